"""The Fig. 4 forgetting probe: how well the current agent still handles early-stage data.

The NE paper's Fig. 4 shows "catastrophic forgetting in MuJoCo late in training" with a y-axis "score"
(NE paper v1, Fig. 4); its protocol is not published. This probe is our reconstruction (docs/deviations.md,
"Fig. 4 forgetting probe"), switched on by the run config's `probe:` section (`config.ProbeConfig`):

- the *early window* is env steps start_steps+1 .. start_steps+W, with W = ⌈early_fraction·(steps − start_steps)⌉:
  the first part of learning, after the uniform-random warm-up;
- while the window is collected, the env state (full MuJoCo state, via `envs.get_state`) and observation after
  `states` evenly spaced steps are saved; at its last step `transitions` evenly spaced transitions of the window
  are copied out of the replay buffer (both counts are upper bounds: a shorter window gives every step). Both
  are then frozen for the rest of the run (and checkpointed);
- at every log interval after that:
  `probe.td_error` = mean |Q1(s, a) − y| over the frozen transitions, y the agent's own TD target (`td_target`,
  computed in a forked RNG so training is untouched); `probe.q` = mean Q1(s, a); `probe.target` = mean y;
  `probe.return` = mean return of deterministic episodes started from the saved states (at most `episode_steps`
  steps each, the time limit restarted at the saved state).

Nothing here changes training: no global RNG draw, no replay sampling, no write to the agent. A run with the probe
trains bit-identically to the same run without it (only its config, hence its id, differs).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from neuroplastic import envs
from neuroplastic.replay import Batch

if TYPE_CHECKING:
    from neuroplastic.config import ProbeConfig, RunConfig

# Agents whose critic maps (obs, action) to Q (a tuple of heads or one tensor) and that expose `td_target`.
PROBE_AGENTS = frozenset({"td3", "sac"})
PROBE_SEED_OFFSET = 200


def early_window(cfg: RunConfig) -> tuple[int, int]:
    """First and last env step of the early window (inclusive)."""
    assert cfg.probe is not None
    width = math.ceil(cfg.probe.early_fraction * (cfg.steps - cfg.start_steps))
    return cfg.start_steps + 1, cfg.start_steps + width


def _evenly_spaced(first: int, last: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(first, last, n).round().astype(np.int64))


def config_problems(cfg: RunConfig, agent: dict[str, Any]) -> list[str]:
    """Why this run cannot carry the probe (empty = it can)."""
    if cfg.env not in envs.MUJOCO_IDS:
        return [f"needs a gymnasium MuJoCo env (its states are saved and restored), not {cfg.env!r}"]
    if agent["name"] not in PROBE_AGENTS:
        agents = ", ".join(sorted(PROBE_AGENTS))
        return [f"needs an agent with a critic on (obs, action) ({agents}), not {agent['name']!r}"]
    if cfg.steps <= cfg.start_steps:
        return [f"needs steps > start_steps ({cfg.steps} ≤ {cfg.start_steps}): there is no early window"]
    _, last = early_window(cfg)
    problems = []
    capacity = min(int(agent.get("buffer_size", cfg.steps)), cfg.steps)
    if capacity < last:
        problems.append(f"the replay buffer ({capacity}) is overwritten before the early window ends (step {last})")
    return problems


class ForgettingProbe:
    """Collects the early-stage data during its window, then measures the agent on it at every log interval."""

    def __init__(self, run_cfg: RunConfig) -> None:
        assert run_cfg.probe is not None
        self.run_cfg = run_cfg
        self.cfg: ProbeConfig = run_cfg.probe
        self.first, self.last = early_window(run_cfg)
        self.transition_steps = _evenly_spaced(self.first, self.last, self.cfg.transitions)
        self.state_steps = set(_evenly_spaced(self.first, self.last, self.cfg.states).tolist())
        self.states: list[tuple[bytes, np.ndarray]] = []
        self.batch: tuple[torch.Tensor, ...] | None = None

    def on_step(self, run: Any, step: int) -> dict[str, float]:
        """Called once per env step, after the step and its updates; returns the probe's metrics at log steps."""
        if step in self.state_steps:
            self.states.append((run.env.get_state(), np.array(run.obs, copy=True)))
        if step == self.last:
            self.batch = self._freeze(run.replay)
        if self.batch is None or step % self.run_cfg.log_every:
            return {}
        return self.measure(run.agent)

    def _freeze(self, replay: Any) -> tuple[torch.Tensor, ...]:
        # The transition of env step t sits at index t − 1 (the buffer has not wrapped: config_problems).
        idx = torch.as_tensor(self.transition_steps - 1, device=replay.device)
        fields = (replay.obs, replay.action, replay.reward, replay.next_obs, replay.not_done)
        return tuple(f[idx].detach().cpu().clone() for f in fields)

    @torch.no_grad()
    def measure(self, agent: Any) -> dict[str, float]:
        device = agent.device
        batch = Batch(*(t.to(device) for t in self.batch))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            target = agent.td_target(batch)
        q = agent.nets["critic"](batch.obs, batch.action)
        q1 = q[0] if isinstance(q, tuple) else q
        values = torch.stack([(q1 - target).abs().mean(), q1.mean(), target.mean()]).cpu().tolist()
        out = dict(zip(("probe.td_error", "probe.q", "probe.target"), values, strict=True))
        out["probe.return"] = float(np.mean([self._episode_return(agent, blob, obs) for blob, obs in self.states]))
        return out

    def _episode_return(self, agent: Any, blob: bytes, obs: np.ndarray) -> float:
        env = envs.make_env(self.run_cfg.env, self.run_cfg.seed + PROBE_SEED_OFFSET)
        envs.set_state(env, blob)
        limit = envs._time_limit(env)
        if limit is not None:
            # Every probe episode may run its full length, wherever in its original episode the state was saved.
            limit._elapsed_steps = 0
        total = 0.0
        for _ in range(self.cfg.episode_steps):
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, explore=False))
            total += float(reward)
            if terminated or truncated:
                break
        env.close()
        return total

    def state_dict(self) -> dict[str, Any]:
        return {"states": list(self.states), "batch": self.batch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.states = list(state["states"])
        self.batch = state["batch"]


def build(run_cfg: RunConfig) -> ForgettingProbe | None:
    return None if run_cfg.probe is None else ForgettingProbe(run_cfg)
