"""The smoke tier: every registered (agent, method) pair trains 1000 steps, logs finite values, and the method acts.

Networks are small (hidden 64, batch 64): the code path is the full-size agent's, and each method's
`smoke_params` make its schedule fire within the run. "Acts" is checked against the plain agent's run (same
config, no method): a method that edits weights, losses or the architecture changes what the run logs; a
method that only measures (grad_snr) must not, and logs its measurement instead.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from neuroplastic import loop, runs
from neuroplastic.agents import AGENTS
from neuroplastic.methods import METHODS
from tests.conftest import metrics_table

pytestmark = pytest.mark.smoke

# The plain agent plus every registered method (test-only methods start with "_").
METHOD_NAMES = ["none", *sorted(m for m in METHODS if not m.startswith("_"))]
# Pixel agents get their own smoke tests (they need a pixel env).
AGENT_ENVS = {"td3": "Hopper-v4", "sac": "Hopper-v4"}
# Methods that only measure: training must stay bit-identical to the plain agent; they log these metrics.
MEASURING = {"grad_snr": ["grad_snr.critic"]}
# Evidence, in the method's own metrics, that its schedule fired within the run (checked at the last step).
FIRED = {
    "redo": lambda t: t["redo.recycles"] > 0,
    "set": lambda t: t["topology.updates.critic"] > 0,
    "rigl": lambda t: t["topology.updates.critic"] > 0,
    "gmp": lambda t: t["topology.updates.critic"] > 0,
}
STEPS, START = 1000, 500


def _pairs():
    for agent in sorted(AGENTS):
        if agent not in AGENT_ENVS:
            continue
        for name in METHOD_NAMES:
            supported = None if name == "none" else METHODS[name].agents
            if supported is None or agent in supported:
                yield agent, name


def _train(agent: str, method: str, out: Path) -> pd.DataFrame:
    entry = [] if method == "none" else [{"name": method, **METHODS[method].smoke_params}]
    cfg = runs.resolve(
        {
            "agent": {"name": agent, "hidden": 64, "batch_size": 64},
            "env": AGENT_ENVS[agent],
            "seed": 0,
            "steps": STEPS,
            "start_steps": START,
            "eval_every": 500,
            "eval_episodes": 1,
            "log_every": 250,
            "checkpoint_every": 0,
            "method": entry,
        }
    )
    loop.train(cfg, out, progress=False)
    df = pd.read_parquet(out / "metrics.parquet")
    assert all(math.isfinite(v) for v in df.value), df[~df.value.map(math.isfinite)]
    return metrics_table(out)


@cache
def _plain(agent: str, root: Path) -> pd.DataFrame:
    return _train(agent, "none", root / f"plain-{agent}")


@pytest.mark.parametrize(("agent", "method"), list(_pairs()))
def test_trains_1000_steps_and_the_method_acts(tmp_path_factory, tmp_path, agent, method):
    plain = _plain(agent, tmp_path_factory.getbasetemp())
    table = plain if method == "none" else _train(agent, method, tmp_path / "run")
    assert table["eval_return"].dropna().index.tolist() == [500, 1000]
    assert table.loc[STEPS, "updates"] == STEPS - START
    if method == "none":
        return
    last = table.loc[STEPS]
    if method in MEASURING:
        pd.testing.assert_frame_equal(table[plain.columns], plain, check_exact=True)
        assert all(last[m] > 0 for m in MEASURING[method])
        return
    # The method changed the run: its losses differ from the plain agent's at the end.
    losses = ["critic_loss", "actor_loss"]
    assert last[losses].tolist() != plain.loc[STEPS, losses].tolist()
    if method in FIRED:
        assert FIRED[method](last), last.filter(like=".").to_dict()
    if method.startswith("ne"):
        # NE variants: the topology changed during the run (growth or pruning), or the preset freezes it.
        updates = last.filter(like="topology.updates.")
        assert updates.empty or updates.max() > 0, last.to_dict()
