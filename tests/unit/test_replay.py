from __future__ import annotations

import numpy as np
import torch

from neuroplastic.replay import ReplayBuffer


def _fill(buf: ReplayBuffer, n: int) -> None:
    for i in range(n):
        buf.add(np.full(2, i), np.zeros(1), float(i), np.full(2, i + 1), terminated=(i % 7 == 6))


def test_ring_wraps_and_keeps_newest():
    buf = ReplayBuffer(2, 1, capacity=10, device=torch.device("cpu"), seed=0)
    _fill(buf, 25)
    assert len(buf) == 10 and buf.ptr == 5
    assert sorted(buf.reward[:, 0].tolist()) == list(range(15, 25))
    # terminated flags follow their transitions
    for r, nd in zip(buf.reward[:, 0].tolist(), buf.not_done[:, 0].tolist(), strict=True):
        assert nd == (0.0 if int(r) % 7 == 6 else 1.0)


def test_oldest_fraction_draws_only_oldest():
    buf = ReplayBuffer(2, 1, capacity=100, device=torch.device("cpu"), seed=0)
    _fill(buf, 250)  # holds 150..249, oldest 30% = 150..179
    batch = buf.sample(4096, oldest=0.3)
    r = batch.reward[:, 0]
    assert r.min() >= 150 and r.max() <= 179
    assert len(set(r.tolist())) == 30
    partial = ReplayBuffer(2, 1, capacity=100, device=torch.device("cpu"), seed=0)
    _fill(partial, 50)
    r = partial.sample(2048, oldest=0.2).reward[:, 0]
    assert r.min() >= 0 and r.max() <= 9


def test_state_roundtrip_continues_sampling_identically():
    a = ReplayBuffer(2, 1, capacity=50, device=torch.device("cpu"), seed=3)
    _fill(a, 70)
    a.sample(8)
    b = ReplayBuffer(2, 1, capacity=50, device=torch.device("cpu"), seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        assert torch.equal(a.sample(16).obs, b.sample(16).obs)
    _fill(a, 3)
    _fill(b, 3)
    assert torch.equal(a.obs, b.obs) and a.ptr == b.ptr
