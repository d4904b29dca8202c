"""DMC envs: id validation, seeding, truncation semantics, frame stacking and exact save/restore."""

from __future__ import annotations

import numpy as np
import pytest

from neuroplastic import config, envs, runs
from neuroplastic.dmc import DMCEnv, GLContextError, _gl_hint
from tests.conftest import tiny_config


@pytest.mark.parametrize(
    ("env_id", "options", "needle"),
    [
        ("dmc:cheetah_run", {}, "domain and task joined by '-'"),
        ("dmc:chetah-run", {}, "unknown DMC domain 'chetah'"),
        ("dmc:cheetah-walk", {}, "unknown task 'walk' of DMC domain 'cheetah' (known: run)"),
        ("dmc:cheetah-run", {"size": 64}, "apply to dmc-pixels envs only"),
        ("dmc-pixels:cheetah-run", {"episode_frames": 101}, "not a multiple of action_repeat=2"),
        ("dmc-pixels:cheetah-run", {"framestack": 2}, "env_options.framestack: unknown key"),
        ("Hopper-v4", {"size": 64}, "unknown key for MuJoCo env"),
    ],
)
def test_bad_ids_and_options_are_named(env_id, options, needle):
    assert needle in envs.env_id_problem(env_id, options)
    with pytest.raises(config.ConfigError, match="env: "):
        runs.resolve(tiny_config(env=env_id, env_options=options))


def test_env_options_keep_old_run_ids_and_enter_new_ones():
    plain = runs.resolve(tiny_config())
    assert "env_options" not in config.canonical_json(plain)
    a = runs.resolve(tiny_config(env="dmc:cartpole-swingup"))
    b = runs.resolve(tiny_config(env="dmc:cartpole-swingup", env_options={"episode_frames": 200}))
    assert config.run_id(a) != config.run_id(b)


def _rollout(env: DMCEnv, actions: list[np.ndarray]) -> list[tuple]:
    return [env.step(a) for a in actions]


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return all(np.array_equal(x[0], y[0]) and x[1:4] == y[1:4] for x, y in zip(a, b, strict=True))


def test_state_env_seeding_and_truncation():
    env = envs.make_env("dmc:cartpole-swingup", 3, {"episode_frames": 20})
    spec = envs.spec_of(env)
    assert spec.obs_dim == 5 and spec.act_dim == 1 and spec.max_episode_steps == 20 and spec.action_repeat == 1
    o1, _ = env.reset(seed=3)
    o2, _ = envs.make_env("dmc:cartpole-swingup", 3).reset(seed=3)
    o3, _ = envs.make_env("dmc:cartpole-swingup", 4).reset(seed=4)
    assert np.array_equal(o1, o2) and not np.array_equal(o1, o3)
    for i in range(20):
        _, _, terminated, truncated, _ = env.step(np.zeros(1))
        assert not terminated  # DMC time limits never terminate
        assert truncated == (i == 19)


def test_asymmetric_action_bounds_are_rescaled():
    env = envs.make_env("dmc:quadruped-run", 0)
    assert envs.spec_of(env).max_action == 1.0
    assert env._act_high[1] == pytest.approx(1.1) and env._act_low[2] == pytest.approx(-0.8)


@pytest.mark.parametrize("env_id", ["dmc:reacher-hard", "dmc:walker-walk"])
def test_state_env_resume_is_exact(env_id):
    """Saved mid-episode and loaded into a differently seeded env: the continuation is identical.

    Reacher moves its target by editing the *model* at reset, so the saved state must carry model edits.
    """
    env = envs.make_env(env_id, 0)
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(30)]
    _rollout(env, actions[:10])
    blob = envs.get_state(env)
    rest = _rollout(env, actions[10:])
    other = envs.make_env(env_id, 7)
    other.reset(seed=7)
    envs.set_state(other, blob)
    assert _same(rest, _rollout(other, actions[10:]))
    # and the action-space RNG continues identically
    envs.set_state(env, blob)
    envs.set_state(other, blob)
    assert np.array_equal(env.action_space.sample(), other.action_space.sample())


def test_pixel_env_frames_stack_and_resume():
    env = envs.make_env("dmc-pixels:cartpole-swingup", 0, {"episode_frames": 16})
    spec = envs.spec_of(env)
    assert spec.obs_shape == (9, 84, 84) and spec.action_repeat == 2 and spec.max_episode_steps == 8
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8
    # at reset the stack holds three copies of the first frame
    assert np.array_equal(obs[0:3], obs[3:6]) and np.array_equal(obs[3:6], obs[6:9])
    actions = [env.action_space.sample() for _ in range(8)]
    prev = obs
    out = []
    for i, a in enumerate(actions):
        nxt, _, terminated, truncated, info = env.step(a)
        assert info["frames"] == 2 and not terminated and truncated == (i == 7)
        # the stack shifts by one frame per agent step
        assert np.array_equal(nxt[0:6], prev[3:9])
        out.append(nxt)
        prev = nxt
        if i == 2:
            blob = envs.get_state(env)
    other = envs.make_env("dmc-pixels:cartpole-swingup", 5, {"episode_frames": 16})
    other.reset(seed=5)
    envs.set_state(other, blob)
    for a, expected in zip(actions[3:], out[3:], strict=True):
        assert np.array_equal(other.step(a)[0], expected)


def test_gl_failure_message_names_the_backend(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    err = _gl_hint(RuntimeError("no display"))
    assert isinstance(err, GLContextError)
    assert "MUJOCO_GL=egl" in str(err) and "Try MUJOCO_GL=osmesa" in str(err) and "libosmesa6" in str(err)

    env = envs.make_env("dmc-pixels:cartpole-swingup", 0)

    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'glGetError'")

    from dm_control.mujoco import engine  # after make_env: it picks the GL backend before dm_control loads

    monkeypatch.setattr(engine.Camera, "render", broken)
    with pytest.raises(GLContextError, match="Try MUJOCO_GL=osmesa"):
        env.reset(seed=0)


def test_pixel_frames_match_a_fresh_camera_per_frame():
    # The env keeps one camera; dm_control's `physics.render` makes a new one per frame. Same pixels, also after
    # the episode ends and a new one starts (the scene must follow the physics, not keep its first state).
    env = envs.make_env("dmc-pixels:cartpole-swingup", 3, {"episode_frames": 8, "size": 24})
    rng = np.random.default_rng(0)
    for _ in range(2):
        env.reset()
        for _ in range(4):
            obs = env.step(rng.uniform(-1, 1, env.action_space.shape))[0]
            fresh = env._env.physics.render(height=24, width=24, camera_id=env.camera).transpose(2, 0, 1)
            assert np.array_equal(obs[-3:], fresh)
    assert not np.array_equal(obs[-3:], obs[:3])  # the frames move
