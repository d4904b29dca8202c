"""Baselines through `loop.train`: compositions work; runs equal plain TD3 until the method first acts; the
stateful baselines resume bit-identically from a checkpoint, and SAC (with Plasticity Injection) after a SIGKILL.
(Every (agent, method) pair alone is trained by `test_every_method.py` with each method's `smoke_params`.)"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from neuroplastic import loop, runs
from tests.conftest import assert_kill_9_resume_is_bit_identical, assert_resume_is_bit_identical, tiny_config

pytestmark = pytest.mark.smoke


def _cfg(method, agent="td3", **kw) -> dict:
    base = {
        "agent": {"name": agent, "hidden": 64, "batch_size": 64},
        "steps": 1000,
        "start_steps": 500,
        "eval_every": 1000,
        "eval_episodes": 1,
        "log_every": 250,
        "method": method,
    }
    return tiny_config(**{**base, **kw})


def _train(cfg: dict, out: Path) -> dict[str, dict[int, float]]:
    loop.train(runs.resolve(cfg), out, progress=False)
    table = pq.read_table(out / "metrics.parquet").to_pylist()
    series: dict[str, dict[int, float]] = {}
    for row in table:
        series.setdefault(row["metric"], {})[row["step"]] = row["value"]
    return series


COMPOSITIONS = [
    ("td3", [{"name": "redo", "interval": 100}, {"name": "layernorm"}]),
    ("td3", [{"name": "redo", "interval": 100}, {"name": "crelu", "nets": "both"}]),
    ("td3", [{"name": "reset", "interval": 700}, {"name": "layernorm"}, {"name": "crelu"}]),
    ("td3", [{"name": "plasticity_injection", "at_step": 700}, {"name": "layernorm"}]),
    ("td3", [{"name": "nap"}, {"name": "l2_init"}, {"name": "shrink_perturb", "interval": 700}]),
    ("sac", [{"name": "reset", "interval": 700, "last_layers": 1}, {"name": "nap"}]),
    ("sac", [{"name": "redo", "interval": 100}, {"name": "layernorm", "nets": "critic"}]),
    # the NE compositions the reviewers asked for
    ("td3", [{"name": "ne", "growth": {"delta": 50}, "review": {"every": 50}}, {"name": "layernorm"}]),
    ("td3", [{"name": "ne", "growth": {"delta": 50}, "review": {"every": 50}}, {"name": "crelu", "nets": "both"}]),
]


@pytest.mark.parametrize(("agent", "methods"), COMPOSITIONS, ids=lambda x: x if isinstance(x, str) else None)
def test_methods_compose(tmp_path, agent, methods):
    series = _train(_cfg(methods, agent=agent), tmp_path / "run")
    assert math.isfinite(series["eval_return"][1000])
    assert all(math.isfinite(v) for v in series["critic_loss"].values())
    assert series["updates"][1000] == 500
    if methods[0]["name"] == "redo":
        assert series["redo.recycles"][1000] == 5


@pytest.mark.parametrize(
    ("entry", "first"),
    [
        ({"name": "reset", "interval": 450}, 450),
        ({"name": "plasticity_injection", "at_step": 450}, 450),
        ({"name": "redo", "interval": 100, "tau": 0.5}, 400),
    ],
    ids=["reset", "plasticity_injection", "redo"],
)
def test_logged_metrics_equal_plain_td3_until_the_method_acts(tmp_path, entry, first):
    kw = {"steps": 550, "start_steps": 300, "log_every": 25, "eval_every": 275}
    plain = _train(_cfg([], **kw), tmp_path / "plain")
    method = _train(_cfg([entry], **kw), tmp_path / "method")
    for name in ("critic_loss", "actor_loss", "dormant.critic.tau0.1", "fau.actor", "eval_return"):
        before = {s: v for s, v in plain[name].items() if s < first}
        assert before and before == {s: method[name][s] for s in before}, name
    after = [s for s in plain["critic_loss"] if s >= first]
    assert any(plain["critic_loss"][s] != method["critic_loss"][s] for s in after)


RESUME_CASES = [
    # resets at 300 (before the checkpoint at 400) and 600, 900 (after)
    ("td3", [{"name": "reset", "interval": 300}]),
    # injected before the checkpoint: the restore re-creates the new heads before loading weights
    ("td3", [{"name": "plasticity_injection", "at_step": 350}]),
    ("td3", [{"name": "redo", "interval": 100}, {"name": "l2_init"}]),
    ("sac", [{"name": "shrink_perturb", "interval": 300}, {"name": "nap"}, {"name": "crelu"}]),
]


@pytest.mark.parametrize(("agent", "methods"), RESUME_CASES, ids=lambda x: x if isinstance(x, str) else None)
def test_resume_is_bit_identical(tmp_path, monkeypatch, agent, methods):
    cfg = _cfg(methods, agent=agent, steps=1000, start_steps=200, log_every=50, eval_every=500, checkpoint_every=400)
    whole = assert_resume_is_bit_identical(tmp_path, runs.resolve(cfg), 700, monkeypatch)
    if methods[0]["name"] == "redo":
        assert whole.loc[1000, "redo.recycles"] == 8


def test_sac_kill_9_then_rerun_is_bit_identical(tmp_path):
    entry = {"name": "plasticity_injection", "at_step": 350, "nets": "critic"}  # injected before the checkpoint
    cfg = _cfg([entry], agent="sac", steps=2000, start_steps=200, log_every=50, eval_every=500, checkpoint_every=400)
    assert_kill_9_resume_is_bit_identical(tmp_path, cfg)
