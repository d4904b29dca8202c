"""Replay buffer for vector observations, stored on the training device.

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


class ReplayBuffer:
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

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        i = self.ptr
        self.obs[i] = torch.as_tensor(obs, dtype=torch.float32)
        self.action[i] = torch.as_tensor(action, dtype=torch.float32)
        self.reward[i, 0] = float(reward)
        self.next_obs[i] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.not_done[i, 0] = 0.0 if terminated else 1.0
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def indices(self, batch_size: int, oldest: float | None = None, generator: torch.Generator | None = None):
        """Uniform indices over the stored window, or over its oldest fraction `oldest`."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        g = self.generator if generator is None else generator
        span = self.size if oldest is None else max(1, int(oldest * self.size))
        offsets = torch.randint(0, span, (batch_size,), generator=g, device=self.device)
        if self.size < self.capacity:
            return offsets
        # When full, the oldest entry sits at `ptr` and the window wraps around.
        return (offsets + self.ptr) % self.capacity

    def sample(self, batch_size: int, oldest: float | None = None, generator: torch.Generator | None = None) -> Batch:
        idx = self.indices(batch_size, oldest, generator)
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
