"""Same config twice → identical metrics.parquet; kill -9 + re-run → identical to an uninterrupted run (TD3; SAC
and DrQ-v2 have their own kill -9 test in test_baseline_runs.py and test_drqv2_smoke.py, every method family an
in-process resume test)."""

from __future__ import annotations

import pytest

from neuroplastic import loop, runs
from tests.conftest import assert_kill_9_resume_is_bit_identical, tiny_config

pytestmark = pytest.mark.smoke

SMALL_TD3 = {"name": "td3", "hidden": 64, "batch_size": 64}


def test_same_config_twice_is_bit_identical(tmp_path):
    cfg = runs.resolve(tiny_config(agent=SMALL_TD3, steps=800, log_every=200, eval_every=400))
    for name in ("a", "b"):
        loop.train(cfg, tmp_path / name, progress=False)
    a = (tmp_path / "a" / "metrics.parquet").read_bytes()
    assert a == (tmp_path / "b" / "metrics.parquet").read_bytes()
    other = runs.resolve(tiny_config(agent=SMALL_TD3, steps=800, log_every=200, eval_every=400, seed=1))
    loop.train(other, tmp_path / "c", progress=False)
    assert a != (tmp_path / "c" / "metrics.parquet").read_bytes()


def test_kill_9_then_rerun_is_bit_identical(tmp_path):
    cfg = tiny_config(agent=SMALL_TD3, steps=2400, start_steps=300, eval_every=600, log_every=200, checkpoint_every=400)
    assert_kill_9_resume_is_bit_identical(tmp_path, cfg)


def test_kill_9_with_episode_end_updates_is_bit_identical(tmp_path):
    # Checkpoints fall inside episodes, so the owed updates must come back with the loop state.
    cfg = tiny_config(
        agent=SMALL_TD3,
        steps=2400,
        start_steps=300,
        eval_every=600,
        log_every=200,
        checkpoint_every=400,
        update_schedule="episode_end",
    )
    assert_kill_9_resume_is_bit_identical(tmp_path, cfg)
