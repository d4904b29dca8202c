from __future__ import annotations

import pandas as pd
import pytest

from neuroplastic import config, loop
from neuroplastic.methods import METHODS, Method, register
from tests.conftest import tiny_config


class HalfRate(Method):
    name = "_half_rate"

    def on_build(self, agent):
        agent.replay_ratio = 0.5

    def on_step(self, agent, step):
        if step == 500:
            agent.replay_ratio = 2.0


@pytest.fixture
def half_rate():
    register(HalfRate)
    yield
    METHODS.pop("_half_rate")


def test_replay_ratio_sets_updates_per_env_step(tmp_path, half_rate):
    cfg = config.resolve(tiny_config(steps=600, start_steps=200, log_every=100, eval_every=600, method="_half_rate"))
    loop.train(cfg, tmp_path / "run", progress=False)
    df = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    updates = df[df.metric == "updates"].set_index("step").value
    # 0.5 updates/step for steps 201..499 (every 2nd step), then 2 per step from step 500 on
    assert updates[300] == 50 and updates[400] == 100
    assert updates[500] == 149 + 2
    assert updates[600] == 151 + 200


def test_default_ckpt_dir_sits_beside_runs(tmp_path):
    assert loop.default_ckpt_dir(tmp_path / "results" / "runs" / "abc") == tmp_path / "results" / "ckpt" / "abc"
    assert loop.default_ckpt_dir(tmp_path / "elsewhere") == tmp_path / "ckpt" / "elsewhere"
