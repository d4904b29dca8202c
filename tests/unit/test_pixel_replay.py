"""PixelReplay: frames stored once; stacks, n-step returns and validity equal a naive per-transition buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroplastic.replay import PixelReplay, ReplayMemoryError

FC, H, W = 3, 4, 4  # tiny frames keep the test fast; the layout is the same as 3×84×84


class NaiveStackEnv:
    """Random frames, frame stack like the DMC env (reset fills the stack with the first frame)."""

    def __init__(self, rng: np.random.Generator, stack: int) -> None:
        self.rng, self.stack = rng, stack
        self.frames: list[np.ndarray] = []

    def _frame(self) -> np.ndarray:
        return self.rng.integers(0, 256, size=(FC, H, W), dtype=np.uint8)

    def reset(self) -> np.ndarray:
        f = self._frame()
        self.frames = [f] * self.stack
        return np.concatenate(self.frames), f

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        f = self._frame()
        self.frames = [*self.frames[1:], f]
        return np.concatenate(self.frames), f


def _fill(replay: PixelReplay, stack: int, episodes: list[tuple[int, str]], seed: int = 0):
    """Play episodes (length, end ∈ {terminated, truncated, open}); return the naive transition records."""
    rng = np.random.default_rng(seed)
    env = NaiveStackEnv(rng, stack)
    records = []
    write = 0  # global count of frames written to the replay
    for ep, (length, end) in enumerate(episodes):
        obs, _ = env.reset()
        write += 1  # the reset frame
        for t in range(length):
            nxt, _ = env.step()
            action = rng.normal(size=2).astype(np.float32)
            reward = float(rng.normal())
            terminated = end == "terminated" and t == length - 1
            truncated = end == "truncated" and t == length - 1
            slot = replay.ptr if replay.in_episode else (replay.ptr + 1) % replay.capacity
            replay.add(obs, action, reward, nxt, terminated, truncated)
            write += 1
            # the obs stack reaches back to the frame written at step max(t−stack+1, −1) of this episode
            first_write = write - 1 - (min(t, stack - 1) + 1)
            records.append(
                dict(
                    ep=ep, t=t, slot=slot, obs=obs, action=action, reward=reward, next_obs=nxt,
                    terminated=terminated, first_write=first_write, write=write,
                )
            )  # fmt: skip
            obs = nxt
    return records, write


def _expected(records, n: int, gamma: float, total_writes: int, capacity: int):
    """Naive n-step transitions (by slot) that must be sampleable."""
    out = {}
    for k, r in enumerate(records):
        ep_rest = [x for x in records[k : k + n] if x["ep"] == r["ep"]]
        cut = next((j for j, x in enumerate(ep_rest) if x["terminated"]), None)
        if cut is None and len(ep_rest) < n:
            continue  # the window crosses the episode end (truncation) or is not stored yet
        steps = ep_rest if cut is None else ep_rest[: cut + 1]
        if r["first_write"] < total_writes - capacity:
            continue  # a frame of its obs stack was overwritten
        ret = sum(gamma**j * x["reward"] for j, x in enumerate(steps))
        out[r["slot"]] = (r["obs"], r["action"], ret, steps[-1]["next_obs"], 0.0 if cut is not None else 1.0)
    return out


EPISODES = [(7, "truncated"), (2, "terminated"), (1, "terminated"), (9, "truncated"), (4, "terminated"), (6, "open")]


@pytest.mark.parametrize(("stack", "n", "capacity"), [(3, 3, 1000), (3, 3, 17), (3, 1, 13), (2, 3, 11), (3, 3, 9)])
def test_reconstruction_equals_naive_stacking(stack, n, capacity):
    replay = PixelReplay((FC * stack, H, W), 2, capacity, torch.device("cpu"), seed=0, nstep=n, gamma=0.9)
    records, writes = _fill(replay, stack, EPISODES)
    expected = _expected(records, n, 0.9, writes, capacity)
    valid = set(torch.nonzero(replay.valid).squeeze(1).tolist())
    assert valid == set(expected), (sorted(valid), sorted(expected))
    assert len(replay) == len(expected)
    idx = torch.tensor(sorted(expected))
    batch = replay.gather(idx)
    for row, slot in enumerate(idx.tolist()):
        obs, action, ret, next_obs, not_done = expected[slot]
        assert np.array_equal(batch.obs[row].numpy(), obs)
        assert np.array_equal(batch.next_obs[row].numpy(), next_obs)
        assert np.array_equal(batch.action[row].numpy(), action)
        assert batch.reward[row, 0].item() == pytest.approx(ret, rel=1e-5)
        assert batch.not_done[row, 0].item() == not_done


def test_frames_are_stored_once_and_sampling_is_uniform_over_valid():
    replay = PixelReplay((9, H, W), 2, 1000, torch.device("cpu"), seed=0)
    _, writes = _fill(replay, 3, [(50, "truncated"), (30, "truncated")])
    assert replay.filled == writes == 82  # one slot per step plus one reset frame per episode
    assert replay.frames.shape == (1000, FC, H, W) and replay.frames.dtype == torch.uint8
    idx = replay.indices(20000)
    assert bool(replay.valid[idx].all())
    counts = torch.bincount(idx, minlength=1000)[replay.valid]
    assert counts.min() > 0.6 * 20000 / len(replay)  # every valid transition gets drawn about equally


def test_state_roundtrip_continues_identically():
    a = PixelReplay((9, H, W), 2, 23, torch.device("cpu"), seed=1)
    _fill(a, 3, EPISODES)
    a.sample(4)
    b = PixelReplay((9, H, W), 2, 23, torch.device("cpu"), seed=5)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        x, y = a.sample(8), b.sample(8)
        assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))


def test_oldest_fraction_draws_from_the_oldest_slots():
    replay = PixelReplay((9, H, W), 2, 100, torch.device("cpu"), seed=0)
    _fill(replay, 3, [(60, "truncated"), (60, "truncated")])  # 122 writes: wrapped, oldest slot = ptr
    idx = replay.indices(2000, oldest=0.3)
    age = (idx - replay.ptr) % replay.capacity
    assert int(age.max()) < 30


def test_memory_estimate_matches_allocation_and_budget():
    replay = PixelReplay((9, 84, 84), 6, 500, torch.device("cpu"), seed=0)
    est = PixelReplay.estimate_bytes(500, (9, 84, 84), 6)
    assert replay.nbytes() == est
    # ≤ 22 KB per transition at 84×84×3 (the frame is 21,168 bytes)
    assert est / 500 <= 22_000


def test_too_big_buffer_fails_before_allocating(monkeypatch):
    monkeypatch.setattr("neuroplastic.replay.mem_available_bytes", lambda: 10 * 2**30)
    with pytest.raises(ReplayMemoryError, match=r"needs 21.*GiB.*only 10.00 GiB are available.*buffer_size"):
        PixelReplay((9, 84, 84), 6, 1_100_000, torch.device("cpu"), seed=0)
    PixelReplay((9, 84, 84), 6, 100_000, torch.device("cpu"), seed=0)  # 2 GiB fits
