"""The cycling env: schedule, padding, exact state save/restore, and its config validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuroplastic import config, cycling, envs, runs
from neuroplastic.config import CycleConfig
from tests.conftest import tiny_config

THREE = ["HalfCheetah-v4", "Hopper-v4", "Walker2d-v4"]


def cycling_config(**overrides) -> dict:
    cycle = {"tasks": THREE, "phase_steps": 100, "cycles": 1}
    cycle.update(overrides.pop("cycle", {}))
    total = len(cycle["tasks"]) * cycle.get("phase_steps", 0) * cycle.get("cycles", 1)
    return tiny_config(env="cycling", steps=overrides.pop("steps", total), cycle=cycle, **overrides)


def _sim_times(env: cycling.CyclingEnv) -> list[float]:
    return [float(e.unwrapped.data.time) for e in env.task_envs]


# --- schedule ------------------------------------------------------------------------------------------------


def test_phase_switches_at_exactly_the_configured_steps():
    phase_steps, cycles = 50, 2
    env = cycling.make_env(CycleConfig(tasks=THREE, phase_steps=phase_steps, cycles=cycles), seed=0)
    truncations, stepped = [], []
    for t in range(1, len(THREE) * phase_steps * cycles + 1):
        before = _sim_times(env)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        # Which task's simulator moved is observed directly, not read from the env's own counters.
        moved = [i for i, (a, b) in enumerate(zip(before, _sim_times(env), strict=True)) if b != a]
        assert len(moved) == 1
        stepped.append(moved[0])
        assert env.step_task_index == moved[0]
        # Padding: the dims beyond the stepped task's observation size are zero.
        assert not obs[env.task_obs_dims[moved[0]] :].any()
        if truncated and t % phase_steps == 0:
            truncations.append(t)
        if terminated or truncated:
            env.reset()
    expected = [((t - 1) // phase_steps) % len(THREE) for t in range(1, len(stepped) + 1)]
    assert stepped == expected
    assert truncations == list(range(phase_steps, len(stepped) + 1, phase_steps))


def test_phase_switch_starts_a_fresh_episode_of_the_next_task():
    env = cycling.make_env(CycleConfig(tasks=["Hopper-v4", "Walker2d-v4"], phase_steps=5), seed=0)
    for _ in range(5):
        _, _, terminated, truncated, _ = env.step(np.zeros(env.act_dim, dtype=np.float32))
    assert truncated and not terminated  # a time limit: bootstrapping continues through a phase switch
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.act_dim, dtype=np.float32))
    _, info = env.reset()
    assert info["cycle_task"] == "Walker2d-v4" and env.task_envs[1].unwrapped.data.time == 0.0


def test_episode_mode_switches_after_n_episodes():
    env = cycling.make_env(CycleConfig(tasks=["Hopper-v4", "Walker2d-v4"], mode="episodes", phase_episodes=3), 0)
    episodes_per_phase: list[int] = [0]
    phases_seen = [env.step_phase]
    for _ in range(3000):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if env.step_phase != phases_seen[-1]:
            phases_seen.append(env.step_phase)
            episodes_per_phase.append(0)
        if terminated or truncated:
            episodes_per_phase[-1] += 1
            env.reset()
        if len(phases_seen) == 4:
            break
    assert phases_seen == [0, 1, 2, 3]
    assert episodes_per_phase[:3] == [3, 3, 3]
    assert env.step_task_id == "Walker2d-v4"  # phase 3 wraps to the 2nd task


# --- padding -------------------------------------------------------------------------------------------------


def test_pad_then_unpad_is_identity():
    rng = np.random.default_rng(0)
    for n in (3, 6, 8):
        x = rng.normal(size=n).astype(np.float32)
        padded = cycling.pad(x, 8)
        assert padded.shape == (8,) and padded.dtype == x.dtype and not padded[n:].any()
        np.testing.assert_array_equal(cycling.unpad(padded, n), x)


def test_padded_action_dims_do_not_affect_the_env():
    env = cycling.make_env(CycleConfig(tasks=["Hopper-v4", "Ant-v4"], phase_steps=100), seed=0)
    assert env.task_act_dims == [3, 8] and env.act_dim == 8
    rng = np.random.default_rng(1)
    for _ in range(10):
        assert not any(env.step(np.zeros(8, dtype=np.float32))[2:4])
    start = env.get_state()
    action = rng.uniform(-1, 1, 8).astype(np.float32)
    noisy = action.copy()
    noisy[3:] = rng.uniform(-1, 1, 5)
    out_a = env.step(action)
    env.set_state(start)
    out_b = env.step(noisy)
    np.testing.assert_array_equal(out_a[0], out_b[0])
    assert out_a[1:4] == out_b[1:4]
    # ... while a real action dim does change the outcome (so the comparison above can fail).
    env.set_state(start)
    changed = action.copy()
    changed[0] = -changed[0]
    assert not np.array_equal(env.step(changed)[0], out_a[0])


# --- exact resume --------------------------------------------------------------------------------------------


def _rollout(env: cycling.CyclingEnv, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.act_dim).astype(np.float32))
        out.append((obs.tobytes(), reward, terminated, truncated, env.step_phase, env.action_space.sample().tobytes()))
        if terminated or truncated:
            env.reset()
    return out


def test_state_restores_mid_phase_bit_identically():
    cycle = CycleConfig(tasks=THREE, phase_steps=100, cycles=2)
    a = cycling.make_env(cycle, seed=0)
    _rollout(a, 130, seed=5)  # mid phase 1 (Hopper), after phase 0's env was left mid-episode
    assert a.step_phase == 1 and a.env_steps == 130
    blob = envs.get_state(a)
    expected = _rollout(a, 250, seed=6)  # runs through two phase switches, back to HalfCheetah
    b = cycling.make_env(cycle, seed=123)
    envs.set_state(b, blob)
    assert b.step_phase == 1 and b.env_steps == 130
    assert _rollout(b, 250, seed=6) == expected
    assert len({row[4] for row in expected}) == 3


# --- config --------------------------------------------------------------------------------------------------


def test_action_bound_table_matches_the_envs():
    for env_id in envs.MUJOCO_IDS:
        env = envs.make_env(env_id, 0)
        assert envs.spec_of(env).max_action == pytest.approx(cycling.ACTION_BOUND[env_id.rsplit("-", 1)[0]])
        env.close()


def test_cycle_defaults_and_run_ids():
    cfg = runs.resolve(tiny_config(env="cycling", steps=1200, cycle={"phase_steps": 300}))
    assert cfg.cycle.tasks == ["HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4"]
    assert cfg.cycle.cycles == 1 and cfg.cycle.mode == "steps" and cfg.cycle.io == "padded"
    spelled = runs.resolve(tiny_config(env="cycling", steps=1200, cycle={"phase_steps": 300, "cycles": 1}))
    assert config.run_id(cfg) == config.run_id(spelled)
    # Runs without a cycle serialise without the key: their ids did not change when it was added.
    plain = runs.resolve(tiny_config())
    assert "cycle" not in json.loads(config.canonical_json(plain))
    assert config.run_id(plain) == "006688afa88c"  # the id on main before `cycle` existed


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (tiny_config(cycle={"phase_steps": 10}), "cycle: only valid with env 'cycling' (env is 'Hopper-v4')"),
        (tiny_config(env="cycling"), "cycle: required key is missing"),
        (cycling_config(steps=301), "steps: must equal len(cycle.tasks)·cycle.phase_steps·cycle.cycles = 3·100·1"),
        (cycling_config(cycle={"tasks": ["Hopper-v4", "Humanoid-v4"]}), "cycle.tasks: the tasks' action bounds"),
        (cycling_config(cycle={"tasks": ["Hopper-v4", "Pong-v4"]}), "cycle.tasks[1]: unknown MuJoCo task 'Pong-v4'"),
        (cycling_config(cycle={"tasks": ["Hopper-v4", "Hopper-v4"]}), "cycle.tasks: 'Hopper-v4' appears twice"),
        (cycling_config(cycle={"tasks": ["Hopper-v4"]}), "cycle.tasks:"),
        (cycling_config(cycle={"io": "per_task"}), "cycle.io: `per_task`"),
        (cycling_config(cycle={"phase_stepz": 3}), "cycle.phase_stepz: unknown key"),
        (tiny_config(env="cycling", cycle={"tasks": THREE}), "cycle.phase_steps: required key is missing"),
        (
            tiny_config(env="cycling", cycle={"mode": "episodes", "phase_episodes": 2, "cycles": 2}),
            "cycle.cycles: not used with mode `episodes`",
        ),
        (tiny_config(env="cycling", cycle={"mode": "episodes"}), "cycle.phase_episodes: required key is missing"),
    ],
)
def test_bad_cycle_configs_name_the_key(data, needle):
    with pytest.raises(config.ConfigError) as err:
        runs.resolve(data)
    assert needle in str(err.value)


def test_episode_mode_config_resolves():
    cfg = runs.resolve(tiny_config(env="cycling", steps=777, cycle={"mode": "episodes", "phase_episodes": 2}))
    assert cfg.cycle.cycles is None and cfg.cycle.total_steps is None
