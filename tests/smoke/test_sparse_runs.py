"""Sparse training through the real loop: GMP equals the plain agent until its first prune, RigL keeps its
density, and the grad_snr measurement leaves training bit-identical."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from neuroplastic import loop, runs
from tests.conftest import assert_resume_is_bit_identical, metrics_table, tiny_config

pytestmark = pytest.mark.smoke


# 300 updates (U); logs every 50 env steps.
BASE = {
    "agent": {"name": "td3", "hidden": 64, "batch_size": 64},
    "steps": 800,
    "start_steps": 500,
    "log_every": 50,
    "eval_every": 400,
}


def _train(tmp_path, name: str, method: list) -> pd.DataFrame:
    cfg = runs.resolve(tiny_config(**BASE, method=method))
    loop.train(cfg, tmp_path / name, progress=False)
    return metrics_table(tmp_path / name)


def test_gmp_is_the_plain_run_until_its_first_prune(tmp_path):
    plain = _train(tmp_path, "plain", [])
    # t0 = 60 (prunes nothing at s = 0), ΔT = 50: first real prune at t = 110, i.e. update 111 = env step 611.
    gmp = _train(tmp_path, "gmp", [{"name": "gmp", "delta": 50, "weight_decay": 0.0}])
    cols = list(plain.columns)
    before, after = plain.index <= 610, plain.index > 610
    assert before.sum() >= 2 and after.sum() >= 2
    pd.testing.assert_frame_equal(plain.loc[before, cols], gmp.loc[before, cols])
    assert not plain.loc[after, "critic_loss"].equals(gmp.loc[after, "critic_loss"])
    # final sparsity reached at t_end = 240 (env step 741): ERK finals give the global 0.9 over linear weights
    assert gmp.loc[800, "density.critic"] == pytest.approx(0.1, abs=2e-3)
    assert gmp.loc[800, "density.actor"] == pytest.approx(0.1, abs=2e-3)
    assert "density.critic" not in gmp.columns or math.isnan(gmp.loc[600, "density.critic"])


def test_rigl_density_is_constant_and_grad_snr_does_not_perturb_training(tmp_path):
    rigl = [{"name": "rigl", "delta": 40}]
    alone = _train(tmp_path, "rigl", rigl)
    measured = _train(tmp_path, "rigl_snr", [*rigl, {"name": "grad_snr", "batch_size": 64}])
    pd.testing.assert_frame_equal(alone, measured[alone.columns])
    assert measured["grad_snr.critic"].notna().all() and (measured["grad_snr.critic"] > 0).all()
    # 0.9 ERK sparsity all along; masks changed at t = 0, 40, …, 240 (T_stop = 240): 7 updates per network
    assert alone["density.critic"].max() - alone["density.critic"].min() == 0.0
    assert alone["density.critic"].iloc[0] == pytest.approx(0.1, abs=2e-3)
    assert alone.loc[800, "topology.updates.critic"] == 7
    assert alone.loc[800, "topology.updates.actor"] == 7


def test_sparse_methods_resume_bit_identically(tmp_path, monkeypatch):
    """SET on the critic, GMP on the actor and grad_snr in one run, interrupted mid-schedule and resumed."""
    method = [
        {"name": "set", "nets": "critic", "delta": 20},
        {"name": "gmp", "nets": "actor", "delta": 20},
        {"name": "grad_snr", "batch_size": 32},
    ]
    cfg = runs.resolve(
        tiny_config(
            agent={"name": "td3", "hidden": 64, "batch_size": 64},
            steps=900,
            start_steps=300,
            log_every=100,
            eval_every=900,
            checkpoint_every=200,
            method=method,
        )
    )
    # interrupted at update 250: between the checkpoint at 400 and the next, mid-pruning (t0 = 120, t_end = 480)
    whole = assert_resume_is_bit_identical(tmp_path, cfg, 550, monkeypatch)
    assert whole.loc[900, "topology.updates.critic"] == 480 // 20 + 1
    assert whole.loc[900, "density.actor"] == pytest.approx(0.1, abs=3e-3)
    assert whole["density.critic"].nunique() == 1
