"""Environments: gymnasium MuJoCo locomotion (v4 and v5), seeded, with exact state save/restore.

Every env is built by `make_env(env_id, seed)`; the training env is seeded with `seed`, the evaluation env
with `seed + EVAL_SEED_OFFSET` (the TD3 author code's convention). `get_state`/`set_state` capture the full
simulator state (MjData, including solver warm-start), the env's RNG and the time-limit counter, so a run
resumed from a checkpoint mid-episode continues bit-identically.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

EVAL_SEED_OFFSET = 100

MUJOCO_TASKS = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid")
MUJOCO_VERSIONS = ("v4", "v5")
MUJOCO_IDS = tuple(f"{t}-{v}" for t in MUJOCO_TASKS for v in MUJOCO_VERSIONS)


@dataclass(frozen=True)
class EnvSpec:
    obs_dim: int
    act_dim: int
    max_action: float
    max_episode_steps: int


# --- composite envs: built from more of the run config than an id (the `cycling` env, see cycling.py) ---------
CYCLING_ENV_ID = "cycling"


class CompositeEnv(gym.Env):
    """An env made of other envs; it saves and restores its own state (`get_state`/`set_state` below defer)."""

    def get_state(self) -> bytes:
        raise NotImplementedError

    def set_state(self, blob: bytes) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------------------


def env_id_problem(env_id: str) -> str | None:
    """None when `env_id` is supported, else a message for the user."""
    if env_id in MUJOCO_IDS or env_id == CYCLING_ENV_ID:
        return None
    return f"unknown env {env_id!r} (known: {', '.join(MUJOCO_IDS)}, {CYCLING_ENV_ID})"


def make_env(env_id: str, seed: int) -> gym.Env:
    if env_id == CYCLING_ENV_ID:
        raise ValueError(f"env {CYCLING_ENV_ID!r} is built from the run's `cycle:` mapping by cycling.make_env")
    problem = env_id_problem(env_id)
    if problem:
        raise ValueError(problem)
    with warnings.catch_warnings():
        # v4 ids are deprecated in gymnasium 1.x, but they are the paper's setting.
        warnings.simplefilter("ignore", DeprecationWarning)
        env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def spec_of(env: gym.Env) -> EnvSpec:
    space = env.action_space
    high = float(np.max(space.high))
    if not np.allclose(space.high, high) or not np.allclose(space.low, -high):
        raise ValueError(f"action space must be symmetric [-a, a] in every dimension, got {space}")
    return EnvSpec(
        obs_dim=int(np.prod(env.observation_space.shape)),
        act_dim=int(np.prod(space.shape)),
        max_action=high,
        max_episode_steps=int(env.spec.max_episode_steps),
    )


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    e = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, gym.wrappers.TimeLimit):
            return e
        e = e.env
    return None


def get_state(env: gym.Env) -> bytes:
    """Everything needed to continue `env` bit-identically."""
    if isinstance(env, CompositeEnv):
        return env.get_state()
    base = env.unwrapped
    limit = _time_limit(env)
    state: dict[str, Any] = {
        "np_random": base.np_random.bit_generator.state,
        "action_space": env.action_space.np_random.bit_generator.state,
        "elapsed_steps": None if limit is None else limit._elapsed_steps,
    }
    if hasattr(base, "data") and hasattr(base, "model"):
        state["mjdata"] = base.data
    return pickle.dumps(state)


def set_state(env: gym.Env, blob: bytes) -> None:
    import mujoco

    if isinstance(env, CompositeEnv):
        env.set_state(blob)
        return
    state = pickle.loads(blob)
    base = env.unwrapped
    if "mjdata" in state:
        mujoco.mj_copyData(base.data, base.model, state["mjdata"])
    base.np_random.bit_generator.state = state["np_random"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = state["elapsed_steps"]


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("gymnasium", "mujoco", "dm_control"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
