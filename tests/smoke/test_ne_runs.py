"""Short NE trainings through the real loop: metrics rows, growing density, and bit-identical resume."""

from __future__ import annotations

import pytest

from neuroplastic import config, loop, runs
from tests.conftest import assert_resume_is_bit_identical, metrics_table, tiny_config

pytestmark = pytest.mark.smoke


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
    return runs.resolve(tiny_config(**base))


@pytest.mark.parametrize("name", ["ne", "ne_code"])
def test_ne_trains_and_logs_topology_and_plasticity(tmp_path, name):
    cfg = _cfg({"name": name, "growth": {"delta": 20}})
    loop.train(cfg, tmp_path / "run", progress=False)
    t = metrics_table(tmp_path / "run")
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


def test_ne_resume_is_bit_identical(tmp_path, monkeypatch):
    """Masks, schedules, review RNGs and counters survive a restart from the checkpoint."""
    method = {"name": "ne", "growth": {"delta": 20}, "review": {"mode": "code", "every": 10, "awaken": 0.99}}
    whole = assert_resume_is_bit_identical(tmp_path, _cfg(method, checkpoint_every=200), 550, monkeypatch)
    assert whole["review.fired_total"].iloc[-1] > 0  # the review path (its RNGs) was exercised
    assert whole["topology.updates.critic"].iloc[-1] > whole["topology.updates.critic"].iloc[0]
