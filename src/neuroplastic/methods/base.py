"""The method plug-in protocol.

A method (an intervention such as NE, Reset or ReDo) never copies the agent. It is an object whose hooks the
agent and the training loop call at fixed points. Every hook has a no-op default, so a method overrides only
what it needs. Hooks, in the order they are called:

Once, while the agent is built:
  1. `net_spec(role, spec)`     edit the layer list of network `role` ("actor", "critic", ...) before it is built
  2. `on_build(agent)`          wrap layers, add masks; runs before target networks and optimizers are made

Every environment step (`step` = env steps taken so far, counted from 1):
  -  `on_episode_end(agent, episode, step)`  when env step `step` ended an episode (terminated or truncated);
                                `episode` = episodes completed so far (Adaptive RR's FAU checks)
  3. `on_step(agent, step)`     after that step is stored, before its updates: resets, injections, anything
                                scheduled in env steps

Every gradient update (only once `step > start_steps`):
  4. `on_sample(agent, replay, step)`  return a `Batch` to replace the uniform sample (experience review), or None
  5. `before_update(agent, update, roles)`  the one host-side hook of the update (see below)
  6. inside the update, for each network the agent optimises ("critic", then "actor" on policy steps):
       `extra_loss(agent, net)`               a term added to that network's loss (L2-Init), or None
       `before_optimizer_step(agent, net, u)` return False to skip this optimizer step (NE topology updates);
                                              gradients are populated and unmasked here
       `after_optimizer_step(agent, net, u)`  re-apply masks, project weights
     and after the Polyak update of the targets: `after_target_update(agent)`
  7. `on_update(agent, batch, step)`           after the whole update

The update's hooks (6) are the method's per-update work: plain tensor work, which the agent's update runs eagerly,
compiled or as a CUDA graph (capture.py decides; the method does not know which). Whatever must happen on the host
at an update goes in `before_update`, called before every update however it runs: advance a clock, decide whether
a scheduled event (a topology update) falls in this update, bring the tensors the hooks read up to date
(`Topology.sync_`). An update that carries an event, host work inside the hooks, is announced there by returning
`EVENT`; it then runs eagerly, and only its hooks may do host work. `capture` declares how the method's events
*between* updates treat the tensors the update reads.

Every `log_every` env steps:
  8. `log_metrics(agent, replay, step)` → dict of metric name → float (may sync with the device; it is rare)

Queries (not hooks): `start_replay_ratio()`, the replay ratio a method makes the agent start training with
(Adaptive RR's `low`; None for every other method), read by `updates_in_run`.

Checkpointing: `state_dict()` / `load_state_dict()` hold everything the method needs to resume bit-identically.
A method that changes the networks' structure after build (Plasticity Injection adds heads at t*) re-creates
that structure in `prepare_restore(agent, state)`, which the loop calls with the method's saved state *before*
the agent's weights and optimizer states are loaded; `load_state_dict` follows after the agent is loaded.

Agents may optimise roles that hold no MLP (SAC's temperature goes through `_optimize("temperature", ...)`), so
hooks that receive a network name must ignore names they do not handle.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import torch
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.nets import MLPSpec
    from neuroplastic.replay import Batch, Replay


class _Event:
    def __repr__(self) -> str:
        return "EVENT"


# What `Method.before_update` returns for an update whose hooks do host work (a topology update).
EVENT: Final = _Event()


class Params(BaseModel):
    """Base of every method's parameter model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class RunContext:
    """What a method may know about the run it is part of."""

    seed: int
    steps: int
    start_steps: int
    device: torch.device
    method_index: int = 0


def updates_in_run(ctx: RunContext, agent: Agent) -> int:
    """Gradient updates the run makes: ⌊(steps − start_steps) · r⌋ (at least 1), where r is the replay ratio
    training starts with (the agent's, or the one a method such as Adaptive RR sets at build, see
    `Method.start_replay_ratio`). Every schedule counted in updates (NE's T_end and review threshold, NaP's
    learning-rate decay, SET/RigL/GMP fractions) is sized by this one number. A ratio that changes during the
    run (Adaptive RR's switch) is not foreseen: the schedule then ends before the run does (docs/deviations.md).
    On-policy agents count their own updates (PPO: iterations × epochs × minibatches, `Agent.planned_updates`)."""
    ratio = next((r for m in agent.methods if (r := m.start_replay_ratio()) is not None), agent.replay_ratio)
    return agent.planned_updates(ctx.steps - ctx.start_steps, ratio)


class Method:
    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = Params
    # Agent names the method applies to; None = every agent.
    agents: ClassVar[frozenset[str] | None] = None
    # Params that make the method act within a ~1000-step smoke run (start_steps 500): the smoke tier
    # trains every (agent, method) pair with these, so each method's schedule fires at least once.
    smoke_params: ClassVar[dict[str, Any]] = {}
    # How this method's events *between* updates treat the tensors a captured update (capture.py) reads:
    # `in_place`: they write into the tensors the capture reads (weights, masks, Adam moments);
    # `rebuild`: they may replace those tensors (modules, optimizers, optimizer state), so the capture watches
    #            their identities and rebuilds itself; `eager`: not capturable, the run updates eagerly.
    capture: ClassVar[Literal["in_place", "rebuild", "eager"]] = "in_place"

    def __init__(self, params: BaseModel, ctx: RunContext) -> None:
        self.params = params
        self.ctx = ctx

    def start_replay_ratio(self) -> float | None:
        """The replay ratio this method makes the agent start training with (None: it does not set one)."""
        return None

    def net_spec(self, role: str, spec: MLPSpec) -> MLPSpec:
        return spec

    def on_build(self, agent: Agent) -> None:
        pass

    def on_step(self, agent: Agent, step: int) -> None:
        pass

    def on_episode_end(self, agent: Agent, episode: int, step: int) -> None:
        pass

    def on_sample(self, agent: Agent, replay: Replay, step: int) -> Batch | None:
        return None

    def extra_loss(self, agent: Agent, net: str) -> torch.Tensor | None:
        return None

    def before_optimizer_step(self, agent: Agent, net: str, update: int) -> bool:
        return True

    def after_optimizer_step(self, agent: Agent, net: str, update: int) -> None:
        pass

    def after_target_update(self, agent: Agent) -> None:
        pass

    def before_update(self, agent: Agent, update: int, roles: tuple[str, ...]) -> Hashable:
        """The host side of update number `update` (stepping optimizer `roles`, in order), before it runs.

        Returns `EVENT` when this method's update hooks do host work in it (a topology update: the update then
        runs eagerly); otherwise the host state those hooks' tensor work depends on (e.g. which layers are
        sparse), `()` by default: a captured update is traced again when it changes."""
        return ()

    def on_update(self, agent: Agent, batch: Batch, step: int) -> None:
        pass

    # --- the scheduled update-time event (benchmarks/throughput.py times one and amortises it) ------
    def event_period(self) -> int | None:
        """Gradient updates between this method's scheduled update-time events (a topology update, a
        recycling step); None when it has none."""
        return None

    def force_next_event(self, agent: Agent) -> None:
        """Make the next update carry the scheduled event, whenever it is due. For timing it: a run that
        does this no longer follows its schedule."""
        raise NotImplementedError(f"method {self.name!r} has no scheduled update-time event")

    def log_metrics(self, agent: Agent, replay: Replay, step: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def prepare_restore(self, agent: Agent, state: dict[str, Any]) -> None:
        pass

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class MethodStack:
    """Composes methods: every hook runs each method in config order."""

    def __init__(self, methods: list[Method]) -> None:
        self.methods = list(methods)

    def __iter__(self):
        return iter(self.methods)

    def __len__(self) -> int:
        return len(self.methods)

    def net_spec(self, role: str, spec: MLPSpec) -> MLPSpec:
        for m in self.methods:
            spec = m.net_spec(role, spec)
        return spec

    def on_build(self, agent: Agent) -> None:
        for m in self.methods:
            m.on_build(agent)

    def on_step(self, agent: Agent, step: int) -> None:
        for m in self.methods:
            m.on_step(agent, step)

    def on_episode_end(self, agent: Agent, episode: int, step: int) -> None:
        for m in self.methods:
            m.on_episode_end(agent, episode, step)

    def on_sample(self, agent: Agent, replay: Replay, step: int) -> Batch | None:
        for m in self.methods:
            batch = m.on_sample(agent, replay, step)
            if batch is not None:
                return batch
        return None

    def extra_loss(self, agent: Agent, net: str) -> torch.Tensor | None:
        total = None
        for m in self.methods:
            term = m.extra_loss(agent, net)
            if term is not None:
                total = term if total is None else total + term
        return total

    def before_optimizer_step(self, agent: Agent, net: str, update: int) -> bool:
        take = True
        for m in self.methods:
            # Every method sees the hook, even when an earlier one already vetoed the step.
            take = m.before_optimizer_step(agent, net, update) and take
        return take

    def after_optimizer_step(self, agent: Agent, net: str, update: int) -> None:
        for m in self.methods:
            m.after_optimizer_step(agent, net, update)

    def after_target_update(self, agent: Agent) -> None:
        for m in self.methods:
            m.after_target_update(agent)

    def before_update(self, agent: Agent, update: int, roles: tuple[str, ...]) -> tuple[Hashable, ...]:
        """Every method's `before_update`, in order (each one's bookkeeping runs, whatever the others return)."""
        return tuple(m.before_update(agent, update, roles) for m in self.methods)

    def on_update(self, agent: Agent, batch: Batch, step: int) -> None:
        for m in self.methods:
            m.on_update(agent, batch, step)

    def log_metrics(self, agent: Agent, replay: Replay, step: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.methods:
            out.update(m.log_metrics(agent, replay, step))
        return out

    def state_dict(self) -> list[dict[str, Any]]:
        return [m.state_dict() for m in self.methods]

    def prepare_restore(self, agent: Agent, states: list[dict[str, Any]]) -> None:
        self._check_count(states)
        for m, s in zip(self.methods, states, strict=True):
            m.prepare_restore(agent, s)

    def _check_count(self, states: list[dict[str, Any]]) -> None:
        if len(states) != len(self.methods):
            raise ValueError(f"checkpoint has {len(states)} method states, config has {len(self.methods)}")

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        if len(states) != len(self.methods):
            raise ValueError(f"checkpoint has {len(states)} method states, config has {len(self.methods)}")
        for m, s in zip(self.methods, states, strict=True):
            m.load_state_dict(s)
