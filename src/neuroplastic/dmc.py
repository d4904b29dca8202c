"""DeepMind Control Suite envs behind the gymnasium-style interface the loop uses.

Env ids: `dmc:<domain>-<task>` (state observations, flattened in the task's key order) and
`dmc-pixels:<domain>-<task>` (RGB frames). Defaults follow DrQ-v2's `dmc.py`:

- pixels: 84×84, camera 2 for quadruped else 0, channel-first, the last 3 frames stacked on the channel axis
  (9×84×84 uint8); at reset the stack is filled with copies of the first frame;
- action repeat 2 for pixels (1 for states): one env step is one *agent step*; rewards are summed over the
  repeated frames (weighted by the running discount, as DrQ-v2's ActionRepeatWrapper does);
- actions are in [-1, 1] in every dimension and rescaled to the task's bounds (quadruped's are asymmetric);
- seeding through `task_kwargs={'random': seed}`; `reset(seed=s)` re-seeds the task RNG the same way, so the
  eval env (seed + EVAL_SEED_OFFSET) is independent of the training env;
- DMC's time limit is a truncation (`truncated=True`), never a termination; only a step whose discount is 0
  terminates.

`env_options` (the run config key) tune an env: `episode_frames` (frames per episode, ≤ the task's own limit
of 1000; shorter episodes make smoke runs cheap), `action_repeat`, and for pixels `frame_stack`, `size`,
`camera`. The rendering backend is MuJoCo's: `MUJOCO_GL` (egl on a GPU, or egl through Mesa/llvmpipe and
osmesa on a CPU). When it is unset we set `egl` before dm_control is imported, because the default (glfw)
needs a display.
"""

from __future__ import annotations

import math
import os
import pickle
from collections import deque
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

STATE_PREFIX = "dmc:"
PIXELS_PREFIX = "dmc-pixels:"


class GLContextError(RuntimeError):
    """MuJoCo could not create an OpenGL context for rendering pixels."""


class DMCOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    episode_frames: int | None = Field(
        None, gt=0, description="Simulator frames per episode (None = the task's own limit, 1000 for the suite)."
    )
    action_repeat: int | None = Field(
        None, gt=0, description="Frames per env step (None = 2 for pixels, 1 for states)."
    )
    frame_stack: int = Field(3, gt=0, description="Pixels only: frames stacked on the channel axis.")
    size: int = Field(84, gt=0, description="Pixels only: rendered height and width.")
    camera: int | None = Field(None, ge=0, description="Pixels only: camera id (None = 2 for quadruped, else 0).")


PIXEL_ONLY_OPTIONS = ("frame_stack", "size", "camera")


def is_dmc_id(env_id: str) -> bool:
    return env_id.startswith((STATE_PREFIX, PIXELS_PREFIX))


def parse_id(env_id: str) -> tuple[str, str, bool]:
    """`dmc-pixels:walker-walk` → ("walker", "walk", True). Domains never contain '-', tasks may contain '_'."""
    pixels = env_id.startswith(PIXELS_PREFIX)
    rest = env_id[len(PIXELS_PREFIX) :] if pixels else env_id[len(STATE_PREFIX) :]
    domain, sep, task = rest.partition("-")
    if not sep or not domain or not task:
        prefix = "dmc-pixels" if pixels else "dmc"
        raise ValueError(
            f"env {env_id!r}: expected {prefix}:<domain>-<task>, domain and task joined by '-' "
            f"(e.g. {prefix}:cheetah-run, {prefix}:ball_in_cup-catch)"
        )
    return domain, task, pixels


def _suite_tasks() -> tuple[tuple[str, str], ...]:
    ensure_gl_backend()
    from dm_control import suite

    return tuple(suite.ALL_TASKS)


def env_id_problem(env_id: str, options: dict[str, Any]) -> str | None:
    """None when the DMC id and options are valid, else a message naming what is wrong."""
    try:
        domain, task, pixels = parse_id(env_id)
    except ValueError as err:
        return str(err)
    tasks = _suite_tasks()
    if (domain, task) not in tasks:
        domains = sorted({d for d, _ in tasks})
        if domain not in domains:
            return f"env {env_id!r}: unknown DMC domain {domain!r} (known: {', '.join(domains)})"
        known = sorted(t for d, t in tasks if d == domain)
        return f"env {env_id!r}: unknown task {task!r} of DMC domain {domain!r} (known: {', '.join(known)})"
    try:
        opts = DMCOptions.model_validate(options)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"])
            lines.append(f"env_options.{key}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}")
        return f"env {env_id!r}: " + "; ".join(lines)
    if not pixels:
        bad = [k for k in PIXEL_ONLY_OPTIONS if k in options]
        if bad:
            return f"env {env_id!r}: env_options {bad} apply to dmc-pixels envs only"
    repeat = opts.action_repeat or (2 if pixels else 1)
    if opts.episode_frames is not None and opts.episode_frames % repeat:
        return (
            f"env {env_id!r}: env_options.episode_frames={opts.episode_frames} "
            f"is not a multiple of action_repeat={repeat}"
        )
    return None


def ensure_gl_backend() -> None:
    # dm_control picks its GL backend when it is first imported; glfw (its default) needs a display.
    os.environ.setdefault("MUJOCO_GL", "egl")


def _gl_hint(err: BaseException) -> GLContextError:
    backend = os.environ.get("MUJOCO_GL", "<unset>")
    other = "osmesa" if backend == "egl" else "egl"
    return GLContextError(
        f"MuJoCo could not render with MUJOCO_GL={backend} ({type(err).__name__}: {err}). "
        f"Try MUJOCO_GL={other}: egl works on NVIDIA GPUs (libEGL_nvidia) and on CPUs through Mesa "
        "(Debian: libegl1 libgl1-mesa-dri); osmesa needs libosmesa6. Set it before the run starts."
    )


def _model_arrays(model: Any) -> dict[str, np.ndarray]:
    out = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        value = getattr(model, name, None)
        if isinstance(value, np.ndarray):
            out[name] = value
    return out


class DMCEnv:
    """One DMC task with the gymnasium `reset`/`step` signature (see the module docstring)."""

    def __init__(self, env_id: str, seed: int, options: dict[str, Any] | None = None) -> None:
        problem = env_id_problem(env_id, options or {})
        if problem:
            raise ValueError(problem)
        domain, task, pixels = parse_id(env_id)
        opts = DMCOptions.model_validate(options or {})
        ensure_gl_backend()
        from dm_control import suite

        self.env_id, self.pixels = env_id, pixels
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        self.action_repeat = opts.action_repeat or (2 if pixels else 1)
        limit = self._env._step_limit
        frames = int(limit) if math.isfinite(limit) else 1000
        if opts.episode_frames is not None:
            frames = min(frames, opts.episode_frames)
        self.episode_frames = frames
        self.max_episode_steps = math.ceil(frames / self.action_repeat)
        self.spec = SimpleNamespace(id=env_id, max_episode_steps=self.max_episode_steps)

        aspec = self._env.action_spec()
        self._act_low = np.asarray(aspec.minimum, dtype=np.float64) * np.ones(aspec.shape)
        self._act_high = np.asarray(aspec.maximum, dtype=np.float64) * np.ones(aspec.shape)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=aspec.shape, dtype=np.float32)
        self.action_space.seed(seed)

        self.size = opts.size
        self.camera = opts.camera if opts.camera is not None else (2 if domain == "quadruped" else 0)
        self.frame_stack = opts.frame_stack
        self._camera: Any = None
        self._frames: deque[np.ndarray] = deque(maxlen=self.frame_stack)
        if pixels:
            shape = (3 * self.frame_stack, self.size, self.size)
            self.observation_space = gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        else:
            dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        self._steps = 0
        # Tasks may edit the model at reset (reacher moves its target geom); checkpoints store what differs.
        self._pristine = {k: v.copy() for k, v in _model_arrays(self._env.physics.model.ptr).items()}

    @property
    def unwrapped(self) -> DMCEnv:
        return self

    # --- observations ------------------------------------------------------------------------------
    def _render(self) -> np.ndarray:
        try:
            if self._camera is None:
                # One camera for the env's life. `physics.render` builds a new one, with its scene of up to
                # max_geom geoms, for every frame: ~6 ms of the ~30 that a CPU spends on a small frame.
                from dm_control.mujoco.engine import Camera

                self._camera = Camera(self._env.physics, height=self.size, width=self.size, camera_id=self.camera)
            frame = self._camera.render()
        except Exception as err:  # the GL stack raises many types (FatalError, AttributeError, ImportError)
            raise _gl_hint(err) from err
        return np.ascontiguousarray(frame.transpose(2, 0, 1))

    def _observe(self, time_step: Any, first: bool) -> np.ndarray:
        if not self.pixels:
            parts = [np.asarray(v, dtype=np.float32).ravel() for v in time_step.observation.values()]
            return np.concatenate(parts)
        frame = self._render()
        if first:
            self._frames.clear()
            for _ in range(self.frame_stack):
                self._frames.append(frame)
        else:
            self._frames.append(frame)
        return np.concatenate(list(self._frames), axis=0)

    # --- gymnasium interface -----------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            # Same semantics as task_kwargs={'random': seed} at load time.
            self._env.task._random = np.random.RandomState(seed)
        time_step = self._env.reset()
        self._steps = 0
        return self._observe(time_step, first=True), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        scaled = self._act_low + (a + 1.0) * 0.5 * (self._act_high - self._act_low)
        reward, discount = 0.0, 1.0
        frames = 0
        for _ in range(self.action_repeat):
            time_step = self._env.step(scaled)
            reward += (time_step.reward or 0.0) * discount
            discount *= time_step.discount
            frames += 1
            if time_step.last():
                break
        self._steps += 1
        terminated = bool(time_step.last() and time_step.discount == 0.0)
        truncated = not terminated and (time_step.last() or self._steps >= self.max_episode_steps)
        return self._observe(time_step, first=False), float(reward), terminated, bool(truncated), {"frames": frames}

    def close(self) -> None:
        self._camera = None
        self._env.physics.free()

    # --- exact save/restore ------------------------------------------------------------------------
    def get_state(self) -> bytes:
        physics = self._env.physics
        model = _model_arrays(physics.model.ptr)
        return pickle.dumps(
            {
                "mjdata": physics.data.ptr,
                "model_diff": {k: v.copy() for k, v in model.items() if not np.array_equal(v, self._pristine[k])},
                "task_random": self._env.task.random.get_state(),
                "step_count": self._env._step_count,
                "reset_next_step": self._env._reset_next_step,
                "steps": self._steps,
                "frames": list(self._frames),
                "action_space": self.action_space.np_random.bit_generator.state,
            }
        )

    def set_state(self, blob: bytes) -> None:
        import mujoco

        state = pickle.loads(blob)
        physics = self._env.physics
        for name, live in _model_arrays(physics.model.ptr).items():
            saved = state["model_diff"].get(name, self._pristine[name])
            if not np.array_equal(live, saved):
                live[...] = saved
        mujoco.mj_copyData(physics.data.ptr, physics.model.ptr, state["mjdata"])
        self._env.task.random.set_state(state["task_random"])
        self._env._step_count = state["step_count"]
        self._env._reset_next_step = state["reset_next_step"]
        self._steps = state["steps"]
        self._frames.clear()
        self._frames.extend(state["frames"])
        self.action_space.np_random.bit_generator.state = state["action_space"]
