from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroplastic import envs, loop, runs
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
    cfg = runs.resolve(tiny_config(steps=600, start_steps=200, log_every=100, eval_every=600, method="_half_rate"))
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


class CountingEnv(envs.TrainingEnv):
    """A training env with its own eval row and phase metrics: the loop logs them without knowing the env."""

    def __init__(self, cfg):
        super().__init__(envs.make_env(cfg.env, cfg.seed), cfg.env)
        self.steps = 0
        self.eval_calls: list[tuple[int, int]] = []

    def step(self, action):
        self.steps += 1
        return super().step(action)

    def eval_row(self, agent, episodes, seed):
        self.eval_calls.append((episodes, seed))
        return {"eval_return": -1.0, "eval_return.extra": float(self.steps)}

    def phase_metrics(self):
        return {"phase.steps": float(self.steps)}


def test_env_owns_its_eval_row_and_phase_metrics(tmp_path, monkeypatch):
    built: list[CountingEnv] = []
    monkeypatch.setattr(runs, "make_training_env", lambda cfg: built.append(CountingEnv(cfg)) or built[-1])
    cfg = runs.resolve(tiny_config(steps=300, start_steps=300, log_every=100, eval_every=150, eval_episodes=2))
    loop.train(cfg, tmp_path / "run", progress=False)
    wide = pd.read_parquet(tmp_path / "run" / "metrics.parquet").pivot(index="step", columns="metric", values="value")
    assert wide["phase.steps"].dropna().to_dict() == {100: 100.0, 200: 200.0, 300: 300.0}
    assert wide["eval_return.extra"].dropna().to_dict() == {150: 150.0, 300: 300.0}
    assert wide["eval_return"].dropna().tolist() == [-1.0, -1.0]
    assert built[0].eval_calls == [(2, cfg.seed + envs.EVAL_SEED_OFFSET)] * 2


def test_plain_env_eval_row_is_the_mean_return_on_a_fresh_env():
    cfg = runs.resolve(tiny_config(steps=300))
    env = runs.make_training_env(cfg)
    assert type(env) is envs.TrainingEnv and env.phase_metrics() == {}

    class Zero:
        def act(self, obs, explore):
            return np.zeros(env.action_space.shape, dtype=np.float32)

    row = env.eval_row(Zero(), episodes=2, seed=7)
    fresh = envs.make_env(cfg.env, 7)
    assert row == {"eval_return": envs.mean_episode_return(Zero(), fresh, 2, 7)}
    assert row["eval_return"] != 0.0
