"""The sparse-training study's agents with each of its methods: PPO on Hopper-v4, DQN on CartPole-v1 and on
ALE/Pong-v5 (the Nature CNN, convolutions sparse too) train through `loop.train` (what `neuroplastic train` runs)
with `static`, `set`, `rigl`, `gmp` and `dense_scaled`, log finite values, and each method does what it says:
the sparse networks hold the configured density (GMP: reach it), dynamic methods change the topology, and the
scaled dense network has the sparse one's parameter count.

Networks and budgets are tiny; the schedules are scaled so that every method's events fire within the run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroplastic import loop, runs
from tests.conftest import metrics_table

pytestmark = pytest.mark.smoke

SPARSITY = 0.8
RUNS = {
    "ppo-hopper": {
        "agent": {"name": "ppo", "hidden": 32, "rollout_length": 64, "batch_size": 16, "epochs": 2},
        "env": "Hopper-v4",
        "steps": 640,
        "start_steps": 0,
        "log_every": 320,
    },
    "dqn-cartpole": {
        "agent": {"name": "dqn", "hidden": 32, "batch_size": 16},
        "env": "CartPole-v1",
        "steps": 600,
        "start_steps": 100,
        "log_every": 300,
    },
    "dqn-pong": {
        "agent": {"name": "dqn", "conv_channels": [4, 4, 4], "hidden": 16, "batch_size": 4, "buffer_size": 400},
        "env": "ALE/Pong-v5",
        "steps": 240,
        "start_steps": 40,
        "log_every": 120,
    },
}
# Per method: the entry (schedules that fire in ~50–80 updates), and whether it changes the topology.
METHODS = {
    "static": ({"name": "static"}, False),
    "set": ({"name": "set", "delta": 10, "drop_fraction": 0.3}, True),
    "rigl": ({"name": "rigl", "delta": 10, "drop_fraction": 0.3}, True),
    "gmp": ({"name": "gmp", "delta": 5, "begin_fraction": 0.1, "end_fraction": 0.5}, True),
    "dense_scaled": ({"name": "dense_scaled"}, False),
}


def _train(run: str, method: str, out: Path) -> pd.DataFrame:
    entry, _ = METHODS[method]
    cfg = runs.resolve(
        {
            **RUNS[run],
            "seed": 0,
            "eval_every": RUNS[run]["steps"],
            "eval_episodes": 1,
            "checkpoint_every": 0,
            "method": [{**entry, "sparsity": SPARSITY}],
        }
    )
    loop.train(cfg, out, progress=False)
    df = pd.read_parquet(out / "metrics.parquet")
    assert len(df) and all(math.isfinite(v) for v in df.value), df[~df.value.map(math.isfinite)]
    return metrics_table(out)


def _dense_params(run: str, role: str) -> int:
    cfg = runs.resolve({**RUNS[run], "method": []})
    built = loop.build(cfg, torch.device("cpu"))
    built.env.close()
    return sum(p.numel() for p in built.agent.nets[role].parameters())


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("run", list(RUNS))
def test_study_agent_trains_with_the_method(tmp_path, run, method):
    table = _train(run, method, tmp_path)
    last = table.iloc[-1]
    assert last["updates"] > 20 and math.isfinite(last["eval_return"])
    roles = ["actor", "critic"] if run.startswith("ppo") else ["critic"]
    if method == "dense_scaled":
        for role in roles:
            # The scaled network's own count is logged beside the sparse count it matches. Widths are whole units,
            # so these tiny networks match within a few percent; the study's sizes within 1% (test_ppo_dqn).
            assert last[f"params.{role}"] == pytest.approx(last[f"params.{role}.sparse_target"], rel=0.03)
            assert last[f"params.{role}"] < 0.5 * _dense_params(run, role)
        assert not any(c.startswith("density.") for c in table.columns)
        return
    for role in roles:
        assert last[f"density.{role}"] == pytest.approx(1 - SPARSITY, abs=0.02), role
    if METHODS[method][1]:
        assert sum(last[f"topology.updates.{r}"] for r in roles) > 0
