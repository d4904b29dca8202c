"""Replay buffers: `ReplayBuffer` for vector observations (on the training device) and `PixelReplay` for
stacked pixel frames (each frame stored once, uint8, in host memory, n-step returns).

Sampling draws indices with the buffer's own `torch.Generator`, so sampling never touches the global torch
RNG (which the agent uses for target-policy noise) and is checkpointed on its own. `sample(..., oldest=f)`
restricts the draw to the oldest fraction `f` of the current window (experience review).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor  # (B, 1)
    next_obs: torch.Tensor
    not_done: torch.Tensor  # (B, 1); 0 only for true terminations, never for time limits


class Replay:
    """What the loop, agents and methods use of a replay buffer; `ReplayBuffer` and `PixelReplay` implement it."""

    generator: torch.Generator

    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        raise NotImplementedError

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool = False,
    ) -> None:
        """Store one transition. `terminated` ends bootstrapping; `truncated` (a time limit) does not, it only
        ends the episode for buffers that track episodes."""
        raise NotImplementedError

    def indices(
        self, batch_size: int, oldest: float | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """`batch_size` uniform draws over the stored window, or over its oldest fraction `oldest`, with the
        buffer's own generator unless `generator` is given."""
        raise NotImplementedError

    def gather(self, idx: torch.Tensor) -> Batch:
        """The transitions at `idx` (from `indices`), on the training device."""
        raise NotImplementedError

    def sample(self, batch_size: int, oldest: float | None = None, generator: torch.Generator | None = None) -> Batch:
        return self.gather(self.indices(batch_size, oldest, generator))

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


class ReplayBuffer(Replay):
    """Vector observations, every array on the training device."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, device: torch.device, seed: int) -> None:
        self.capacity = int(capacity)
        self.device = device
        self.obs = torch.zeros((self.capacity, obs_dim), dtype=torch.float32, device=device)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros((self.capacity, act_dim), dtype=torch.float32, device=device)
        self.reward = torch.zeros((self.capacity, 1), dtype=torch.float32, device=device)
        self.not_done = torch.zeros((self.capacity, 1), dtype=torch.float32, device=device)
        self.ptr = 0
        self.size = 0
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, terminated, truncated=False) -> None:
        i = self.ptr
        self.obs[i] = torch.as_tensor(obs, dtype=torch.float32)
        self.action[i] = torch.as_tensor(action, dtype=torch.float32)
        self.reward[i, 0] = float(reward)
        self.next_obs[i] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.not_done[i, 0] = 0.0 if terminated else 1.0
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def indices(self, batch_size, oldest=None, generator=None) -> torch.Tensor:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        g = self.generator if generator is None else generator
        span = self.size if oldest is None else max(1, int(oldest * self.size))
        offsets = torch.randint(0, span, (batch_size,), generator=g, device=self.device)
        if self.size < self.capacity:
            return offsets
        # When full, the oldest entry sits at `ptr` and the window wraps around.
        return (offsets + self.ptr) % self.capacity

    def gather(self, idx: torch.Tensor) -> Batch:
        return Batch(self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx], self.not_done[idx])

    def state_dict(self) -> dict:
        n = self.size
        return {
            "obs": self.obs[:n].cpu().clone(),
            "next_obs": self.next_obs[:n].cpu().clone(),
            "action": self.action[:n].cpu().clone(),
            "reward": self.reward[:n].cpu().clone(),
            "not_done": self.not_done[:n].cpu().clone(),
            "ptr": self.ptr,
            "size": self.size,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        n = state["size"]
        for key in ("obs", "next_obs", "action", "reward", "not_done"):
            getattr(self, key)[:n] = state[key].to(self.device)
        self.ptr = state["ptr"]
        self.size = n
        self.generator.set_state(state["generator"])


def mem_available_bytes() -> int | None:
    """`MemAvailable` from /proc/meminfo (None where the file does not exist, e.g. macOS)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cuda_free_bytes(device: torch.device) -> int:
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


class ReplayMemoryError(MemoryError):
    """The machine lacks the memory a replay buffer would need."""


class PixelReplay(Replay):
    """Replay for stacked pixel observations that stores every frame once, as uint8.

    Storage is a ring of *slots*, one per time step, as in DrQ-v2's episode files: slot j holds the frame
    observed at that time step, the action that led to it, its reward, whether it terminated the episode, and
    `pos` = the number of steps since its episode's reset (0 for the reset frame, whose action/reward are
    unused). An episode of T steps therefore takes T+1 slots; stacked observations and next-observations are
    never stored, they are rebuilt from single frames at sampling time: the stack of slot m is the frames of
    slots m−S+1..m, where slots before the episode's reset are replaced by the reset frame (what the env's
    frame stack does at reset).

    A transition is named by the slot i of its action: obs = stack(i−1), action_i, the n-step return
    Σ_{k<n} γ^k r_{i+k}, next_obs = stack(i+n−1), not_done = 1, and the agent bootstraps with γ^n. A
    transition is sampleable (`valid[i]`) once its n steps are stored in one episode; when a termination
    comes first, the return stops there and not_done = 0. As in DrQ-v2, the last n−1 steps before a time-limit
    truncation are never sampled (their n-step window would cross the episode end). Overwriting the oldest
    slot invalidates exactly the transitions whose stacks reach back to it.

    Sampling is uniform over valid transitions (DrQ-v2 samples an episode, then a step; with fixed-length
    DMC episodes the two are the same), with the buffer's own generator, checkpointed with the buffer.
    Frames stay in host memory; a batch is gathered there and moved to `device`.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        act_dim: int,
        capacity: int,
        device: torch.device,
        seed: int,
        nstep: int = 3,
        gamma: float = 0.99,
        frame_channels: int = 3,
        check_memory: bool = True,
        frames_device: torch.device | None = None,
    ) -> None:
        channels, height, width = obs_shape
        if channels % frame_channels:
            raise ValueError(f"observation has {channels} channels, not a multiple of {frame_channels} per frame")
        self.frame_shape = (frame_channels, height, width)
        self.frame_stack = channels // frame_channels
        self.capacity = int(capacity)
        if self.capacity < self.frame_stack + nstep + 1:
            raise ValueError(f"replay capacity {capacity} is too small for frame stack {self.frame_stack}, n={nstep}")
        self.nstep, self.gamma = int(nstep), float(gamma)
        self.device = device
        # Frames live in host memory, or on the GPU (`frames_device`) where they fit: then a batch is gathered
        # on the device. Everything else (and the sampling RNG) stays on the host, so the draws are the same.
        self.frames_device = torch.device("cpu") if frames_device is None else torch.device(frames_device)
        need = self.estimate_bytes(self.capacity, obs_shape, act_dim, frame_channels)
        if check_memory:
            frame_bytes = self.capacity * frame_channels * height * width
            if self.frames_device.type == "cuda":
                self.check_memory(frame_bytes, self.capacity, cuda_free_bytes(self.frames_device), "GPU memory")
                self.check_memory(need - frame_bytes, self.capacity)
            else:
                self.check_memory(need, self.capacity)
        c = self.capacity
        # `empty`: pages are committed as slots are filled, so RSS grows with the data, not the capacity.
        self.frames = torch.empty((c, *self.frame_shape), dtype=torch.uint8, device=self.frames_device)
        self.action = torch.zeros((c, act_dim), dtype=torch.float32)
        self.reward = torch.zeros(c, dtype=torch.float32)
        self.terminal = torch.zeros(c, dtype=torch.bool)
        self.pos = torch.zeros(c, dtype=torch.int32)
        self.valid = torch.zeros(c, dtype=torch.bool)
        self.ptr = 0  # next slot to write
        self.filled = 0  # slots holding data
        self.in_episode = False
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self._discounts = torch.tensor([self.gamma**k for k in range(self.nstep)], dtype=torch.float32)

    # --- memory ------------------------------------------------------------------------------------
    @staticmethod
    def estimate_bytes(capacity: int, obs_shape: tuple[int, ...], act_dim: int, frame_channels: int = 3) -> int:
        """Bytes the buffer allocates: per slot one uint8 frame, the action (f32), reward (f32), pos (i32),
        terminal and valid flags (bool)."""
        _, height, width = obs_shape
        per_slot = frame_channels * height * width + 4 * act_dim + 4 + 4 + 1 + 1
        return int(capacity) * per_slot

    def nbytes(self) -> int:
        tensors = (self.frames, self.action, self.reward, self.terminal, self.pos, self.valid)
        return sum(t.numel() * t.element_size() for t in tensors)

    @staticmethod
    def check_memory(need: int, capacity: int, available: int | None = None, where: str = "host memory") -> None:
        available = mem_available_bytes() if available is None and where == "host memory" else available
        if available is not None and need > available:
            source = "MemAvailable in /proc/meminfo" if where == "host memory" else "torch.cuda.mem_get_info"
            raise ReplayMemoryError(
                f"the pixel replay buffer needs {need / 2**30:.2f} GiB of {where} for {capacity} slots "
                f"({need / capacity / 1024:.1f} KiB per transition) but only {available / 2**30:.2f} GiB are "
                f"available ({source}); lower the agent's buffer_size, keep frames on the host "
                "(replay_storage: host) or use a bigger machine"
            )

    # --- adding ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.valid.sum())

    def _write(self, frame: np.ndarray, action: np.ndarray | None, reward: float, terminal: bool, pos: int) -> int:
        j = self.ptr
        c, s = self.capacity, self.frame_stack
        if self.filled == c:
            # Slot j (the oldest) is overwritten: drop every transition whose obs stack reaches back to it.
            # The obs slot m = j+d reaches j iff d == 0 or it sits ≥ d steps into an episode that began ≤ j.
            old_pos = self.pos[[(j + d) % c for d in range(s)]].tolist()
            for d in range(s):
                if d == 0 or old_pos[d] >= d:
                    self.valid[(j + d + 1) % c] = False
        self.valid[j] = False
        self.frames[j] = torch.from_numpy(np.ascontiguousarray(frame)).to(self.frames_device)
        if action is None:
            self.action[j] = 0.0
        else:
            self.action[j] = torch.as_tensor(action, dtype=torch.float32)
        self.reward[j] = float(reward)
        self.terminal[j] = bool(terminal)
        self.pos[j] = pos
        self.ptr = (j + 1) % c
        self.filled = min(self.filled + 1, c)
        return j

    def add(self, obs, action, reward, next_obs, terminated, truncated=False) -> None:
        fc = self.frame_shape[0]
        if not self.in_episode:
            # First step of an episode: store the reset frame (the last frame of the reset stack).
            self._write(obs[-fc:], None, 0.0, False, 0)
            self._last_pos = 0
            self.in_episode = True
        pos = self._last_pos + 1
        j = self._write(next_obs[-fc:], action, reward, terminated, pos)
        self._last_pos = pos
        c, n = self.capacity, self.nstep
        # The transition whose n-th step this is becomes sampleable.
        if pos >= n:
            self.valid[(j - n + 1) % c] = True
        if terminated:
            # Transitions whose n-step window is cut short by the termination (they bootstrap with 0).
            for k in range(min(n - 1, pos)):
                self.valid[(j - k) % c] = True
        if terminated or truncated:
            self.in_episode = False

    # --- sampling ----------------------------------------------------------------------------------
    def _candidates(self, oldest: float | None) -> torch.Tensor:
        cand = torch.nonzero(self.valid).squeeze(1)
        if cand.numel() == 0:
            raise RuntimeError("cannot sample from a pixel replay buffer with no complete transition")
        if oldest is not None:
            start = self.ptr if self.filled == self.capacity else 0
            age = (cand - start) % self.capacity
            span = max(1, int(oldest * self.filled))
            kept = cand[age < span]
            cand = kept if kept.numel() else cand[age.argmin().reshape(1)]
        return cand

    def indices(self, batch_size, oldest=None, generator=None) -> torch.Tensor:
        cand = self._candidates(oldest)
        g = self.generator if generator is None else generator
        pick = torch.randint(0, cand.numel(), (batch_size,), generator=g, device=g.device)
        # The buffer's own generator lives on the host; only a device generator (metrics) needs the copy.
        return cand[pick.to(cand.device)]

    def stack_slots(self, slots: torch.Tensor) -> torch.Tensor:
        """(B,) slot indices → (B, S) slot indices of their frame stacks, oldest first, clamped at resets."""
        back = torch.arange(self.frame_stack - 1, -1, -1, dtype=torch.int64)  # S−1, ..., 0
        steps_back = torch.minimum(back[None, :], self.pos[slots].to(torch.int64)[:, None])
        return (slots[:, None] - steps_back) % self.capacity

    def stacked(self, slots: torch.Tensor) -> torch.Tensor:
        """Stacked observations (B, S·C, H, W) uint8 of the given slots."""
        # index_select is several times faster than advanced indexing for this row gather
        rows = self.stack_slots(slots).flatten().to(self.frames_device)
        frames = torch.index_select(self.frames, 0, rows)  # (B·S, C, H, W)
        return frames.view(len(slots), -1, *self.frame_shape[1:])

    def gather(self, idx: torch.Tensor) -> Batch:
        c, n = self.capacity, self.nstep
        window = (idx[:, None] + torch.arange(n)[None, :]) % c  # (B, n) slots i..i+n−1
        term = self.terminal[window]
        # alive[k]: no termination among steps i..i+k−1
        alive = torch.cat((torch.ones(len(idx), 1, dtype=torch.bool), ~term[:, :-1]), dim=1).cumprod(dim=1).bool()
        reward = (self.reward[window] * self._discounts[None, :] * alive).sum(1, keepdim=True)
        ended = (term & alive).any(1)
        n_eff = torch.where(ended, (term & alive).to(torch.int64).argmax(1) + 1, torch.full_like(idx, n))
        next_slots = (idx + n_eff - 1) % c
        obs = self.stacked((idx - 1) % c)
        next_obs = self.stacked(next_slots)
        not_done = (~ended).to(torch.float32)[:, None]
        dev = self.device
        return Batch(
            obs.to(dev),
            self.action[idx].to(dev),
            reward.to(dev),
            next_obs.to(dev),
            not_done.to(dev),
        )

    # --- checkpointing -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        n = self.filled
        # A full buffer is saved without a copy; a partial one copies only its filled slots.
        frames = self.frames if n == self.capacity else self.frames[:n].clone()
        frames = frames.cpu()
        return {
            "frames": frames,
            "action": self.action[:n].clone(),
            "reward": self.reward[:n].clone(),
            "terminal": self.terminal[:n].clone(),
            "pos": self.pos[:n].clone(),
            "valid": self.valid[:n].clone(),
            "ptr": self.ptr,
            "filled": n,
            "in_episode": self.in_episode,
            "last_pos": getattr(self, "_last_pos", 0),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        n = state["filled"]
        for key in ("frames", "action", "reward", "terminal", "pos", "valid"):
            getattr(self, key)[:n].copy_(state[key])
        self.ptr, self.filled = state["ptr"], n
        self.in_episode, self._last_pos = state["in_episode"], state["last_pos"]
        self.generator.set_state(state["generator"])
