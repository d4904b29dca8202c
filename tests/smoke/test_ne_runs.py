"""Short NE trainings through the real loop: metrics rows, growing density, and bit-identical resume."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from neuroplastic import config, loop
from tests.conftest import tiny_config

pytestmark = pytest.mark.smoke


@pytest.fixture(autouse=True)
def _one_thread():
    # Two intra-op threads on a shared 2-core machine can be ~30x slower than one (spin-waiting under load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(method: dict, **kw) -> config.RunConfig:
    base = dict(
        agent={"name": "td3", "critic": "ne", "hidden": 64},
        steps=900,
        start_steps=300,
        log_every=300,
        eval_every=900,
        eval_episodes=1,
        method=[method],
    )
    base.update(kw)
    return config.resolve(tiny_config(**base))


def _table(out) -> pd.DataFrame:
    df = pd.read_parquet(out / "metrics.parquet")
    return df.pivot(index="step", columns="metric", values="value")


@pytest.mark.parametrize("name", ["ne", "ne_code"])
def test_ne_trains_and_logs_topology_and_plasticity(tmp_path, name):
    cfg = _cfg({"name": name, "growth": {"delta": 20}})
    loop.train(cfg, tmp_path / "run", progress=False)
    t = _table(tmp_path / "run")
    density = t["density.critic"]
    # starts sparse (ERK at 0.8; dense first/last layers raise it for `ne`) and grows at every log row
    assert density.iloc[0] < 0.45
    assert all(b > a for a, b in zip(density, density.iloc[1:], strict=False))
    assert density.iloc[-1] > density.iloc[0] + 0.05
    # 600 updates, a topology update every 20 below T_end = 600 (the 600th is not < T_end)
    assert t["topology.updates.critic"].iloc[-1] == 600 // 20 - 1
    assert t["topology.grown.critic"].iloc[1:].gt(0).all() and t["topology.pruned.critic"].iloc[1:].gt(0).all()
    for metric in ("fau.critic", "dormant.critic.tau0", "dormant.critic.tau0.1", "review.fired_frac"):
        assert t[metric].notna().all(), metric
    assert 0.0 < t["fau.critic"].iloc[-1] < 1.0
    if name == "ne_code":  # static actor: its density never moves
        assert t["density.actor"].nunique() == 1 and "topology.updates.actor" not in t
    else:
        assert t["density.actor"].iloc[-1] > t["density.actor"].iloc[0]


class _Killed(Exception):
    pass


def test_ne_resume_is_bit_identical(tmp_path, monkeypatch):
    method = {"name": "ne", "growth": {"delta": 20}, "review": {"mode": "code", "every": 10, "awaken": 0.99}}
    cfg = _cfg(method, checkpoint_every=200)
    loop.train(cfg, tmp_path / "whole", progress=False)

    real_collect = loop.collect

    def dying_collect(run, state, t):
        if t == 550:
            raise _Killed
        real_collect(run, state, t)

    monkeypatch.setattr(loop, "collect", dying_collect)
    with pytest.raises(_Killed):
        loop.train(cfg, tmp_path / "split", progress=False)
    monkeypatch.setattr(loop, "collect", real_collect)
    loop.train(cfg, tmp_path / "split", progress=False)

    whole, split = _table(tmp_path / "whole"), _table(tmp_path / "split")
    assert whole["review.fired_total"].iloc[-1] > 0  # the review path (its RNGs) was exercised
    pd.testing.assert_frame_equal(whole, split, check_exact=True)


def test_ne_kill_9_then_rerun_is_bit_identical(tmp_path):
    """The foundation's kill -9 check with NE: masks, schedules, review RNGs and counters survive a SIGKILL."""
    from tests.smoke.test_determinism_resume import _train_cli, run_killed_and_resumed

    method = {"name": "ne", "growth": {"delta": 20}, "review": {"mode": "code", "every": 10, "awaken": 0.99}}
    cfg = tiny_config(
        agent={"name": "td3", "critic": "ne", "hidden": 64},
        steps=1600,
        start_steps=300,
        eval_every=800,
        eval_episodes=1,
        log_every=200,
        checkpoint_every=400,
        method=[method],
    )
    resumed = run_killed_and_resumed(tmp_path, cfg)
    ref = tmp_path / "runs" / "reference"
    proc = _train_cli(tmp_path / "cfg.yaml", ref)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert resumed == (ref / "metrics.parquet").read_bytes()
