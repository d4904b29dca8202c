"""The continual `cycling` env: one agent trains on several MuJoCo tasks in sequence.

The schedule is the run config's `cycle:` mapping (`config.CycleConfig`). In mode `steps` (default) the task
switches every `cycle.phase_steps` env steps, in the order of `cycle.tasks`, and the whole sequence runs
`cycle.cycles` times (the run's `steps` must equal len(tasks)·phase_steps·cycles). In mode `episodes` the task
switches after `cycle.phase_episodes` finished episodes and the sequence repeats until `steps` runs out.

A phase switch ends the current episode: the step that completes a phase returns `truncated=True` (a time
limit, so bootstrapping continues through it), and the next `reset()` starts a fresh episode of the next task.
A task's env is left where it was when its phase ended; when the task comes back it starts with a reset.

Interface (`cycle.io: padded`): observations are zero-padded to the largest observation size of the tasks, and
actions have the largest action size; the dims a task does not have are sliced off before the task's env is
stepped, so they have no effect on it. All tasks must share one action bound (Humanoid's ±0.4 cannot be mixed
with the others' ±1). Per-task input/output layers over a shared trunk (`io: per_task`) are not implemented.

The loop trains in `CyclingTrainingEnv` (`runs.make_training_env` builds it for `env: cycling`): its eval row
covers every task at every eval point (`eval_return.<task>`, so forgetting shows up in the metrics, and
`eval_return` = the task being trained), and its phase metrics (`cycle.phase`, `cycle.task_index`) go with
every log row.
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec as GymEnvSpec

from neuroplastic import envs
from neuroplastic.config import CYCLING_ENV_ID, CycleConfig

# Action bound (±a in every dim) of each MuJoCo task; checked against the real envs by a unit test. It lets the
# config be validated without building any env.
ACTION_BOUND = {"HalfCheetah": 1.0, "Hopper": 1.0, "Walker2d": 1.0, "Ant": 1.0, "Humanoid": 0.4}


def _task_name(env_id: str) -> str:
    return env_id.rsplit("-", 1)[0]


def cycle_config_problems(cycle: CycleConfig) -> list[str]:
    """Problems of a `cycle:` mapping, each as `key: message` relative to `cycle.` (empty = fine)."""
    problems = []
    for i, task in enumerate(cycle.tasks):
        if task not in envs.MUJOCO_IDS:
            problems.append(f"tasks[{i}]: unknown MuJoCo task {task!r} (known: {', '.join(envs.MUJOCO_IDS)})")
    seen = set()
    for task in cycle.tasks:
        if task in seen:
            problems.append(f"tasks: {task!r} appears twice (repeat the sequence with `cycles` instead)")
        seen.add(task)
    known = [t for t in cycle.tasks if t in envs.MUJOCO_IDS]
    bounds = {ACTION_BOUND[_task_name(t)] for t in known}
    if len(bounds) > 1:
        per_task = ", ".join(f"{t} ±{ACTION_BOUND[_task_name(t)]:g}" for t in known)
        problems.append(f"tasks: the tasks' action bounds differ ({per_task}); cycle tasks with one bound only")
    if cycle.mode == "steps":
        if cycle.phase_steps is None:
            problems.append("phase_steps: required key is missing (mode `steps`)")
        if cycle.phase_episodes is not None:
            problems.append("phase_episodes: only valid with mode `episodes`")
    else:
        if cycle.phase_episodes is None:
            problems.append("phase_episodes: required key is missing (mode `episodes`)")
        if cycle.phase_steps is not None:
            problems.append("phase_steps: only valid with mode `steps`")
        if cycle.cycles is not None:
            problems.append("cycles: not used with mode `episodes` (the run lasts `steps`; the sequence repeats)")
    if cycle.io == "per_task":
        problems.append(
            "io: `per_task` (per-task input/output layers over a shared trunk) is not implemented; "
            "use `padded` (docs/deviations.md, Cycling)"
        )
    return problems


def pad(x: np.ndarray, size: int) -> np.ndarray:
    """`x` followed by zeros up to `size` entries (its own dtype)."""
    out = np.zeros(size, dtype=x.dtype)
    out[: x.shape[0]] = x
    return out


def unpad(x: np.ndarray, size: int) -> np.ndarray:
    """The first `size` entries: the dims a task really has."""
    return x[:size]


class PaddedTask:
    """One task seen through the cycling interface (evaluation): padded observations, sliced actions."""

    def __init__(self, env: gym.Env, obs_dim: int, max_episode_steps: int | None = None) -> None:
        self.env = env
        self.obs_dim = obs_dim
        self.act_dim = int(np.prod(env.action_space.shape))
        self.max_episode_steps = max_episode_steps
        self._steps = 0

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed)
        self._steps = 0
        return pad(obs, self.obs_dim), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(unpad(action, self.act_dim))
        self._steps += 1
        if self.max_episode_steps is not None and self._steps >= self.max_episode_steps:
            truncated = True
        return pad(obs, self.obs_dim), float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        self.env.close()


class CyclingEnv(envs.CompositeEnv):
    """The training env of `env: cycling`: the active task's env behind the padded interface."""

    def __init__(self, cycle: CycleConfig, seed: int) -> None:
        problems = cycle_config_problems(cycle)
        if problems:
            raise ValueError("invalid cycle config: " + "; ".join(f"cycle.{p}" for p in problems))
        self.cycle = cycle
        self.tasks = list(cycle.tasks)
        self.task_envs = [envs.make_env(task, seed) for task in self.tasks]
        specs = [envs.spec_of(e) for e in self.task_envs]
        bounds = {s.max_action for s in specs}
        if len(bounds) != 1:  # the ACTION_BOUND table is out of date
            raise ValueError(f"cycle.tasks: action bounds differ: {dict(zip(self.tasks, bounds, strict=False))}")
        self.max_action = bounds.pop()
        self.task_obs_dims = [s.obs_dim for s in specs]
        self.task_act_dims = [s.act_dim for s in specs]
        self.obs_dim = max(self.task_obs_dims)
        self.act_dim = max(self.task_act_dims)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-self.max_action, self.max_action, (self.act_dim,), dtype=np.float32)
        self.action_space.seed(seed)
        self.spec = GymEnvSpec(CYCLING_ENV_ID, max_episode_steps=max(s.max_episode_steps for s in specs))
        # Schedule state (all of it is in get_state):
        self.env_steps = 0  # env steps taken, all tasks together
        self.phase = 0  # phase of the current episode (task index = phase mod len(tasks))
        self.step_phase = 0  # phase the most recent env step belonged to (what metrics report)
        self.phase_episodes_done = 0  # finished episodes in the current phase (mode `episodes`)
        self.switch_pending = False  # the current phase is over; the next reset starts the next one
        self.needs_reset = True

    # --- schedule -------------------------------------------------------------------------------
    @property
    def task_index(self) -> int:
        return self.phase % len(self.tasks)

    @property
    def step_task_index(self) -> int:
        return self.step_phase % len(self.tasks)

    @property
    def step_task_id(self) -> str:
        """The task the most recent env step was taken in (the "current" task of an eval point)."""
        return self.tasks[self.step_task_index]

    def phase_metrics(self) -> dict[str, float]:
        return {"cycle.phase": float(self.step_phase), "cycle.task_index": float(self.step_task_index)}

    # --- gym API --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if self.switch_pending:
            self.phase += 1
            self.phase_episodes_done = 0
            self.switch_pending = False
        obs, info = self.task_envs[self.task_index].reset(seed=seed, options=options)
        self.needs_reset = False
        return pad(obs, self.obs_dim), {**info, "cycle_phase": self.phase, "cycle_task": self.tasks[self.task_index]}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.needs_reset:
            raise RuntimeError("cycling env: step() after the episode ended; call reset() first")
        k = self.task_index
        obs, reward, terminated, truncated, info = self.task_envs[k].step(unpad(action, self.task_act_dims[k]))
        self.env_steps += 1
        self.step_phase = self.phase
        if self.cycle.mode == "steps":
            if self.env_steps % self.cycle.phase_steps == 0:
                # The phase is over: end the episode like a time limit (not a termination).
                truncated = True
                self.switch_pending = True
        elif terminated or truncated:
            self.phase_episodes_done += 1
            if self.phase_episodes_done >= self.cycle.phase_episodes:
                self.switch_pending = True
        terminated, truncated = bool(terminated), bool(truncated)
        self.needs_reset = terminated or truncated
        return pad(obs, self.obs_dim), float(reward), terminated, truncated, info

    def close(self) -> None:
        for e in self.task_envs:
            e.close()

    # --- exact resume ---------------------------------------------------------------------------
    _COUNTERS = ("env_steps", "phase", "step_phase", "phase_episodes_done", "switch_pending", "needs_reset")

    def get_state(self) -> bytes:
        state: dict[str, Any] = {
            "tasks": self.tasks,
            "task_envs": [envs.get_state(e) for e in self.task_envs],
            "action_space": self.action_space.np_random.bit_generator.state,
            **{k: getattr(self, k) for k in self._COUNTERS},
        }
        return pickle.dumps(state)

    def set_state(self, blob: bytes) -> None:
        state = pickle.loads(blob)
        if state["tasks"] != self.tasks:
            raise ValueError(f"cycling env state is for tasks {state['tasks']}, this env has {self.tasks}")
        for e, s in zip(self.task_envs, state["task_envs"], strict=True):
            envs.set_state(e, s)
        self.action_space.np_random.bit_generator.state = state["action_space"]
        for k in self._COUNTERS:
            setattr(self, k, state[k])


def make_env(cycle: CycleConfig, seed: int) -> CyclingEnv:
    env = CyclingEnv(cycle, seed)
    env.reset(seed=seed)
    return env


class CyclingTrainingEnv(envs.TrainingEnv):
    """`env: cycling` as the loop sees it: evaluation on every task, the phase in every log row."""

    env: CyclingEnv

    def __init__(self, cycle: CycleConfig, seed: int) -> None:
        super().__init__(make_env(cycle, seed), CYCLING_ENV_ID)

    def eval_row(self, agent: envs.Policy, episodes: int, seed: int) -> dict[str, float]:
        row = {}
        for task, env in eval_envs(self.env, seed):
            row[f"eval_return.{task}"] = envs.mean_episode_return(agent, env, episodes, seed)
            env.close()
        # `eval_return` is the task being trained, so figures of single-task runs read cycling runs too.
        row["eval_return"] = row[f"eval_return.{self.env.step_task_id}"]
        row.update(self.phase_metrics())
        return row

    def phase_metrics(self) -> dict[str, float]:
        return self.env.phase_metrics()


def eval_envs(env: CyclingEnv, seed: int) -> list[tuple[str, PaddedTask]]:
    """A fresh evaluation env per task (seeded `seed`), behind the same padded interface as `env`."""
    cap = env.cycle.eval_max_episode_steps
    return [(task, PaddedTask(envs.make_env(task, seed), env.obs_dim, cap)) for task in env.tasks]
