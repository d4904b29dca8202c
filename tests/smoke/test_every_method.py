"""The smoke tier: every registered (agent, method) pair trains ~1000 steps and logs finite values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from neuroplastic import config, loop
from neuroplastic.agents import AGENTS
from neuroplastic.methods import METHODS

pytestmark = pytest.mark.smoke

# The plain agent plus every registered method (test-only methods start with "_").
METHOD_NAMES = ["none", *sorted(m for m in METHODS if not m.startswith("_"))]
# Pixel agents get their own smoke tests (they need a pixel env).
AGENT_ENVS = {"td3": "Hopper-v4", "sac": "Hopper-v4"}


def _pairs():
    for agent in sorted(AGENTS):
        if agent not in AGENT_ENVS:
            continue
        for name in METHOD_NAMES:
            supported = None if name == "none" else METHODS[name].agents
            if supported is None or agent in supported:
                yield agent, name


@pytest.mark.parametrize(("agent", "method"), list(_pairs()))
def test_trains_1000_steps(tmp_path, agent, method):
    entry = [] if method == "none" else [{"name": method, **METHODS[method].smoke_params}]
    cfg = config.resolve(
        {
            "agent": agent,
            "env": AGENT_ENVS[agent],
            "seed": 0,
            "steps": 1000,
            "start_steps": 500,
            "eval_every": 500,
            "eval_episodes": 1,
            "log_every": 250,
            "checkpoint_every": 0,
            "method": entry,
        }
    )
    loop.train(cfg, tmp_path / "run", progress=False)
    df = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    ev = df[df.metric == "eval_return"]
    assert ev.step.tolist() == [500, 1000]
    assert all(math.isfinite(v) for v in df.value), df[~df.value.map(math.isfinite)]
    assert df[df.metric == "updates"].value.max() == 500
