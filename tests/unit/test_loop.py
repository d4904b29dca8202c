from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from neuroplastic import config, envs, loop, runs
from neuroplastic.methods import METHODS, Method, register
from tests.conftest import tiny_config, train_until_first_checkpoint


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


# --- update_schedule: episode_end (the TD3 paper's protocol) --------------------------------------------------


class UpdateRecorder(Method):
    """Records, per update, the env step it follows and the replay size it sampled from; per episode end its step."""

    name = "_update_recorder"
    updates: ClassVar[list[tuple[int, int]]] = []
    episode_ends: ClassVar[list[int]] = []

    def on_episode_end(self, agent, episode, step):
        UpdateRecorder.episode_ends.append(step)

    def on_sample(self, agent, replay, step):
        UpdateRecorder.updates.append((step, len(replay)))
        return None


@pytest.fixture
def recorder():
    register(UpdateRecorder)
    UpdateRecorder.updates, UpdateRecorder.episode_ends = [], []
    yield UpdateRecorder
    METHODS.pop("_update_recorder")


def recorded_run(schedule: str, steps: int = 400, start: int = 150) -> tuple[list, list, int]:
    cfg = runs.resolve(
        tiny_config(
            agent={"name": "td3", "hidden": 16, "batch_size": 16},
            steps=steps,
            start_steps=start,
            update_schedule=schedule,
            method="_update_recorder",
        )
    )
    run = loop.build(cfg, torch.device("cpu"))
    state = loop.LoopState()
    UpdateRecorder.updates, UpdateRecorder.episode_ends = [], []
    for t in range(1, steps + 1):
        loop.advance(run, state, t)
    return list(UpdateRecorder.updates), list(UpdateRecorder.episode_ends), run.agent.updates


def test_episode_end_schedule_makes_the_same_updates_at_each_episode_end(recorder):
    steps, start = 400, 150
    per_step, _, n_step = recorded_run("step", steps, start)
    at_end, ends, n_end = recorded_run("episode_end", steps, start)
    # The same count: one per env step after start_steps.
    assert n_step == n_end == len(per_step) == len(at_end) == steps - start
    # Per step: each update right after its env step, from a buffer holding that step.
    assert per_step == [(t, t) for t in range(start + 1, steps + 1)]
    # At the episode end: each episode's updates (its steps after start_steps) after its last step, sampled from the
    # buffer holding the whole episode; the unfinished last episode's at the run's last step.
    assert len(ends) > 3 and ends[-1] < steps
    expected, previous = [], start
    for end in [e for e in ends if e > start] + [steps]:
        expected += [(end, end)] * (end - previous)
        previous = end
    assert at_end == expected


def test_default_schedule_keeps_run_ids_and_episode_end_needs_an_off_policy_agent():
    plain = {"agent": {"name": "td3"}, "env": "Hopper-v4", "steps": 10}
    assert config.run_id(runs.resolve(plain)) == "7499921432ae"  # the id before `update_schedule` existed
    assert config.run_id(runs.resolve({**plain, "update_schedule": "step"})) == "7499921432ae"
    assert "update_schedule" not in config.canonical_json(runs.resolve(plain))
    episode_end = runs.resolve({**plain, "update_schedule": "episode_end"})
    assert '"update_schedule":"episode_end"' in config.canonical_json(episode_end)
    with pytest.raises(config.ConfigError, match="update_schedule: 'episode_end' needs an off-policy agent, not 'ppo'"):
        runs.resolve({**plain, "agent": {"name": "ppo"}, "start_steps": 0, "update_schedule": "episode_end"})
    with pytest.raises(config.ConfigError, match="update_schedule"):
        runs.resolve({**plain, "update_schedule": "episode"})


def test_episode_end_schedule_spends_replay_ratio_credit_like_the_step_schedule(tmp_path, half_rate):
    cfg = runs.resolve(
        tiny_config(
            steps=600,
            start_steps=200,
            log_every=100,
            eval_every=600,
            method="_half_rate",
            update_schedule="episode_end",
        )
    )
    loop.train(cfg, tmp_path / "run", progress=False)
    df = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    updates = df[df.metric == "updates"].set_index("step").value
    # The step schedule's counts (test_replay_ratio_sets_updates_per_env_step): 50, 100, 151 at steps 300-500 and
    # 351 at the end; owed updates wait for the episode end, so at a log step they are at most those.
    assert updates[600] == 151 + 200
    assert all(updates[s] <= n for s, n in ((300, 50), (400, 100), (500, 151)))


def test_episode_end_resume_mid_episode_restores_the_owed_updates(tmp_path, monkeypatch):
    from neuroplastic import runlog

    cfg = runs.resolve(
        tiny_config(
            agent={"name": "td3", "hidden": 32, "batch_size": 32},
            steps=700,
            start_steps=200,
            log_every=100,
            eval_every=350,
            checkpoint_every=350,
            update_schedule="episode_end",
        )
    )
    loop.train(cfg, tmp_path / "runs" / "ref", progress=False)

    out = tmp_path / "runs" / "cut"
    state = train_until_first_checkpoint(cfg, out, monkeypatch)
    credit, episode_steps = state["loop"]["update_credit"], state["loop"]["episode_steps"]
    assert credit >= 1.0 and episode_steps > 0  # the checkpoint sits inside an episode that is owed updates
    loop.train(cfg, out, progress=False)
    ref = (tmp_path / "runs" / "ref" / runlog.METRICS_PARQUET).read_bytes()
    assert (out / runlog.METRICS_PARQUET).read_bytes() == ref


def test_ne_schedule_sized_in_updates_holds_under_the_episode_end_schedule():
    """NE counts updates (T_end = the run's updates, a topology update every Δ): the episode-end schedule makes the
    same updates, so NE's schedule ends where the run does and fires as often."""
    counts = {}
    for schedule in ("step", "episode_end"):
        cfg = runs.resolve(
            tiny_config(
                agent={"name": "td3", "hidden": 16, "batch_size": 16},
                steps=500,
                start_steps=250,
                update_schedule=schedule,
                method=[{"name": "ne", "growth": {"delta": 25}, "review": {"every": 25}}],
            )
        )
        run = loop.build(cfg, torch.device("cpu"))
        state = loop.LoopState()
        for t in range(1, cfg.steps + 1):
            loop.advance(run, state, t)
        ne = run.methods.methods[0]
        counts[schedule] = (ne.t_end, run.agent.updates, {r: g.topology_updates for r, g in ne.growth.items()})
    assert counts["step"] == counts["episode_end"]
    assert counts["step"][:2] == (250, 250) and all(n >= 9 for n in counts["step"][2].values())
