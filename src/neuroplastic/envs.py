"""Environments, seeded, with exact state save/restore.

- gymnasium MuJoCo locomotion (`Hopper-v4`, ..., v4 and v5);
- DeepMind Control Suite from states (`dmc:<domain>-<task>`, e.g. `dmc:cheetah-run`) and from pixels
  (`dmc-pixels:<domain>-<task>`): see `neuroplastic.dmc`.

Every env is built by `make_env(env_id, seed, options)`; the training env is seeded with `seed`, the evaluation
env with `seed + EVAL_SEED_OFFSET` (the TD3 author code's convention). The loop trains in the `TrainingEnv` that
`runs.make_training_env(cfg)` returns: the env it steps, plus what the env adds to the log (its evaluation row
and phase metrics), so the loop knows no env by name. Envs built from more of the run config than an id (the
continual `cycling` env, cycling.py) come through the same function. `get_state`/`set_state` capture the full
simulator state (MjData, including solver warm-start), the env's RNG and the time-limit counter (for DMC also
the task RNG, the step counters and the frame stack), so a run resumed from a checkpoint mid-episode continues
bit-identically. `options` (the run config's `env_options`) tune DMC envs (episode length, action repeat, ...);
gymnasium MuJoCo envs take one, `contact_margin: max` (MuJoCo ≤ 3.4 contact margins on MuJoCo ≥ 3.5, see
`MUJOCO_OPTIONS`); classic-control envs take none.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from neuroplastic import atari, dmc
from neuroplastic.config import CYCLING_ENV_ID

EVAL_SEED_OFFSET = 100

MUJOCO_TASKS = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid")
MUJOCO_VERSIONS = ("v4", "v5")
MUJOCO_IDS = tuple(f"{t}-{v}" for t in MUJOCO_TASKS for v in MUJOCO_VERSIONS)
# Discrete classic-control tasks of the sparse-training study's DQN runs.
# CartPole-v0 (200-step episodes) is the sparse-training study's CartPole (rigl `dqn_gym_dense_config.gin`).
CLASSIC_IDS = ("CartPole-v0", "CartPole-v1", "Acrobot-v1", "MountainCar-v0")

# `env_options` of gymnasium MuJoCo envs, key → accepted values. `contact_margin: max`: a contact between two geoms
# starts at the larger of their two margins, as in MuJoCo ≤ 3.4.0; MuJoCo ≥ 3.5.0 adds the two margins, so Hopper's
# foot touches the floor from 2 mm instead of 1 mm (docs/deviations.md, "Contact margins"). Off (absent) by default.
MUJOCO_OPTIONS = {"contact_margin": ("max",)}
# The first MuJoCo release that sums two geoms' margins (bisected: 3.4.0 takes the maximum, 3.5.0 sums).
MARGIN_SUM_SINCE = (3, 5, 0)


@dataclass(frozen=True)
class EnvSpec:
    obs_dim: int
    act_dim: int
    max_action: float
    max_episode_steps: int
    # Full observation shape: (obs_dim,) for vectors, (channels, height, width) for stacked pixel frames.
    obs_shape: tuple[int, ...] = ()
    # Simulator frames per env step (DMC action repeat, Atari frame skip); 1 for gymnasium envs.
    action_repeat: int = 1
    # Number of discrete actions (then act_dim is 1 and the action is its index); 0 for continuous actions.
    n_actions: int = 0


class CompositeEnv(gym.Env):
    """An env made of other envs; it saves and restores its own state (`get_state`/`set_state` below defer)."""

    def get_state(self) -> bytes:
        raise NotImplementedError

    def set_state(self, blob: bytes) -> None:
        raise NotImplementedError


class Policy(Protocol):
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray: ...


class TrainingEnv:
    """The env a run trains in, as the loop sees it: the gym API of the wrapped `env` (reset, step, spaces,
    spec, close); `eval_row` and `phase_metrics`, what the env adds to the metrics log; `get_state`/`set_state`
    to resume it exactly.

    This base evaluates on a fresh env of the same id and has no phases; envs that need more (the cycling
    env evaluates every task and reports its phase) subclass it.
    """

    def __init__(self, env: Any, env_id: str, options: dict[str, Any] | None = None) -> None:
        self.env = env
        self.env_id = env_id
        self.options = options or {}

    # --- the wrapped env's gym API --------------------------------------------------------------
    @property
    def action_space(self) -> gym.spaces.Box:
        return self.env.action_space

    @property
    def observation_space(self) -> gym.spaces.Space:
        return self.env.observation_space

    @property
    def spec(self) -> Any:
        return self.env.spec

    @property
    def unwrapped(self) -> Any:
        return self.env.unwrapped

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        return self.env.reset(**kwargs)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()

    # --- what the env adds to the run -----------------------------------------------------------

    def eval_row(self, agent: Policy, episodes: int, seed: int) -> dict[str, float]:
        """The eval row: `eval_return`, the mean return of `episodes` deterministic episodes on a fresh env
        seeded `seed` (the loop passes run seed + EVAL_SEED_OFFSET)."""
        env = make_env(self.env_id, seed, self.options)
        try:
            return {"eval_return": mean_episode_return(agent, env, episodes, seed)}
        finally:
            env.close()

    def phase_metrics(self) -> dict[str, float]:
        """Metrics that describe where the env's schedule is (logged with every training row); none here."""
        return {}

    def get_state(self) -> bytes:
        return get_state(self.env)

    def set_state(self, blob: bytes) -> None:
        set_state(self.env, blob)


def mean_episode_return(agent: Policy, env: Any, episodes: int, seed: int) -> float:
    """Mean return of `episodes` deterministic episodes; `env` is reset with `seed` before the first one."""
    total = 0.0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed) if ep == 0 else env.reset()
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, explore=False))
            total += float(reward)
            done = terminated or truncated
    return total / episodes


def env_id_problem(env_id: str, options: dict[str, Any] | None = None) -> str | None:
    """None when `env_id` (with `options`) is supported, else a message for the user."""
    if dmc.is_dmc_id(env_id):
        return dmc.env_id_problem(env_id, options or {})
    if atari.is_atari_id(env_id):
        return atari.env_id_problem(env_id, options or {})
    if env_id in MUJOCO_IDS:
        return _mujoco_option_problem(env_id, options or {})
    if env_id in CLASSIC_IDS or env_id == CYCLING_ENV_ID:
        if options:
            return f"env_options {sorted(options)} are not accepted by env {env_id!r} (only DMC and MuJoCo envs)"
        return None
    return (
        f"unknown env {env_id!r} (known: {', '.join(MUJOCO_IDS + CLASSIC_IDS)}, {CYCLING_ENV_ID}, "
        "dmc:<domain>-<task>, dmc-pixels:<domain>-<task> and ALE/<Game>-v5, e.g. dmc:cheetah-run, "
        "dmc-pixels:walker-walk, ALE/Pong-v5)"
    )


def _mujoco_option_problem(env_id: str, options: dict[str, Any]) -> str | None:
    problems = []
    for key, value in options.items():
        if key not in MUJOCO_OPTIONS:
            problems.append(
                f"env_options.{key}: unknown key for MuJoCo env {env_id!r} (known: {', '.join(MUJOCO_OPTIONS)})"
            )
        elif value not in MUJOCO_OPTIONS[key]:
            allowed = ", ".join(repr(v) for v in MUJOCO_OPTIONS[key])
            problems.append(f"env_options.{key}: must be one of {allowed} (or left out), got {value!r}")
    return "; ".join(problems) or None


def mujoco_version() -> tuple[int, ...]:
    import mujoco

    return tuple(int(part) for part in mujoco.__version__.split(".")[:3])


def use_max_contact_margins(model: Any, version: tuple[int, ...] | None = None) -> None:
    """Give `model` MuJoCo ≤ 3.4's contact margins on MuJoCo ≥ 3.5 (a no-op on older versions, which have them).

    Since 3.5.0 a contact between two geoms is active within the *sum* of their margins, before within the larger
    one. When both margins are equal, halving every geom's margin makes the sum equal the old maximum; the MuJoCo
    models of gymnasium give all geoms of a model one margin (Hopper and Humanoid 0.001, Ant 0.01, Walker2d and
    HalfCheetah 0), and a model that does not is refused rather than approximated.
    """
    if (version or mujoco_version()) < MARGIN_SUM_SINCE:
        return
    margins = np.unique(model.geom_margin)
    if len(margins) > 1:
        raise ValueError(
            f"env_options.contact_margin: 'max' needs one margin for every geom, this model has {margins.tolist()}"
        )
    model.geom_margin[:] = model.geom_margin / 2


def make_env(env_id: str, seed: int, options: dict[str, Any] | None = None) -> gym.Env:
    if env_id == CYCLING_ENV_ID:
        raise ValueError(f"env {CYCLING_ENV_ID!r} is built from the run's `cycle:` mapping by make_training_env")
    problem = env_id_problem(env_id, options)
    if problem:
        raise ValueError(problem)
    if dmc.is_dmc_id(env_id):
        return dmc.DMCEnv(env_id, seed, options or {})
    if atari.is_atari_id(env_id):
        return atari.AtariEnv(env_id, seed)
    with warnings.catch_warnings(), _mujoco_compiler_warning_dropped(env_id in MUJOCO_IDS):
        # v4 ids are deprecated in gymnasium 1.x, but they are the paper's setting.
        warnings.simplefilter("ignore", DeprecationWarning)
        env = gym.make(env_id)
    if (options or {}).get("contact_margin") == "max":
        use_max_contact_margins(env.unwrapped.model)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


# gymnasium's HalfCheetah model sets `settotalmass`, which the XML compiler of MuJoCo 3.17 (our pin) calls
# deprecated. It prints that from C on every compile (train and eval env: twice a run); the model is gymnasium's.
MUJOCO_DROPPED_WARNING = "compiler attribute 'settotalmass' is deprecated"


@contextlib.contextmanager
def _mujoco_compiler_warning_dropped(active: bool) -> Iterator[None]:
    """While a MuJoCo model compiles: drop its one known deprecation warning, pass every other warning to the
    handler set before (none: print it as MuJoCo does, `WARNING: <text>` on stderr), then put that one back."""
    if not active:
        yield
        return
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def handler(text: str) -> None:
        if text.startswith(MUJOCO_DROPPED_WARNING):
            return
        if previous is None:
            print(f"WARNING: {text}\n", file=sys.stderr)
        elif hasattr(previous, "argtypes"):  # a ctypes callback (dm_control sets one) takes a C string
            previous(text.encode())
        else:
            previous(text)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def spec_of(env: gym.Env) -> EnvSpec:
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        limit = getattr(env.unwrapped, "max_episode_steps", None) or env.spec.max_episode_steps
        return EnvSpec(
            obs_dim=int(np.prod(env.observation_space.shape)),
            act_dim=1,
            max_action=1.0,
            max_episode_steps=int(limit),
            obs_shape=tuple(int(d) for d in env.observation_space.shape),
            action_repeat=int(getattr(env.unwrapped, "action_repeat", 1)),
            n_actions=int(space.n),
        )
    high = float(np.max(space.high))
    if not np.allclose(space.high, high) or not np.allclose(space.low, -high):
        raise ValueError(f"action space must be symmetric [-a, a] in every dimension, got {space}")
    return EnvSpec(
        obs_dim=int(np.prod(env.observation_space.shape)),
        act_dim=int(np.prod(space.shape)),
        max_action=high,
        max_episode_steps=int(env.spec.max_episode_steps),
        obs_shape=tuple(int(d) for d in env.observation_space.shape),
        action_repeat=int(getattr(env.unwrapped, "action_repeat", 1)),
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
    if isinstance(env, TrainingEnv | CompositeEnv | dmc.DMCEnv | atari.AtariEnv):
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
    elif hasattr(base, "state"):
        # Classic control keeps its whole dynamics state in `state` (and CartPole a post-termination counter).
        state["classic"] = (pickle.dumps(base.state), getattr(base, "steps_beyond_terminated", None))
    return pickle.dumps(state)


def set_state(env: gym.Env, blob: bytes) -> None:
    import mujoco

    if isinstance(env, TrainingEnv | CompositeEnv | dmc.DMCEnv | atari.AtariEnv):
        env.set_state(blob)
        return
    state = pickle.loads(blob)
    base = env.unwrapped
    if "mjdata" in state:
        mujoco.mj_copyData(base.data, base.model, state["mjdata"])
    if "classic" in state:
        base.state = pickle.loads(state["classic"][0])
        if hasattr(base, "steps_beyond_terminated"):
            base.steps_beyond_terminated = state["classic"][1]
    base.np_random.bit_generator.state = state["np_random"]
    env.action_space.np_random.bit_generator.state = state["action_space"]
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = state["elapsed_steps"]
