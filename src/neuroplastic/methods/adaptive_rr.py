"""Adaptive Replay Ratio (Ma et al., ICLR 2024, "Revisiting Plasticity in Visual RL", §5).

Train at a low replay ratio (0.5: DrQ-v2's one update every 2 agent steps) while the critic is still losing
plasticity, and switch once, permanently, to a high one (2 updates per agent step) when the critic's fraction
of active units (FAU) has plateaued. Every `check_every` episodes (I = 50 = 5×10^4 frames on DMC) the current
critic-FAU value Φ_t is compared with the previous check's Φ_{t−I}; when |Φ_t − Φ_{t−I}| ≤ `threshold`
(0.001) and the ratio is still low, the ratio becomes `high`. Φ is the critic FAU of each update, measured on
its (augmented) training batch with the weights of that update (`agent.critic_fau()` for DrQ-v2; other
agents: FAU of `training_activations(batch)["critic"]`), averaged over a window of updates:

- `average: episode` (default, code-faithful to `Guozheng-Ma/Adaptive-Replay-Ratio`): the accumulator is
  cleared when episode k ends with k % I == I − 1, so the value checked at k % I == 0 is the mean over the
  updates of that single episode; the very first reference value is the FAU of the very first update;
- `average: interval` (documented alternative, the paper's wording "FAU at t vs t − I"): the mean over all
  updates since the previous check; the first check only sets the reference.

The test runs at episode ends (`on_episode_end`), so episodes of any length work. The accumulated sum stays on
the device; the check reads it once per I episodes. The switch step is logged (`adaptive_rr.switch_step`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from neuroplastic.methods.base import Method, Params
from neuroplastic.metrics import fau

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Batch


class AdaptiveRRParams(Params):
    low: float = Field(0.5, gt=0, description="Replay ratio (updates per agent step) before the switch.")
    high: float = Field(2.0, gt=0, description="Replay ratio after the switch.")
    check_every: int = Field(50, gt=0, description="Episodes between FAU checks (I; Ma: 50 = 5e4 frames).")
    threshold: float = Field(0.001, ge=0, description="Switch when |Φ_t − Φ_{t−I}| ≤ threshold.")
    average: Literal["episode", "interval"] = Field(
        "episode", description="episode: mean over the single episode before a check (code); interval: since last."
    )

    @model_validator(mode="after")
    def _low_below_high(self):
        if self.high <= self.low:
            raise ValueError("high must be greater than low")
        return self


class AdaptiveRR(Method):
    name = "adaptive_rr"
    Params = AdaptiveRRParams
    params: AdaptiveRRParams
    # The low/high defaults are DrQ-v2's; the mechanism itself only needs a critic.
    agents: ClassVar[frozenset[str] | None] = frozenset({"drqv2"})
    smoke_params: ClassVar[dict] = {"check_every": 2, "threshold": 1.0}

    def __init__(self, params: AdaptiveRRParams, ctx) -> None:
        super().__init__(params, ctx)
        self.sum = torch.zeros((), device=ctx.device)
        self.count = 0
        self.reference: torch.Tensor | None = None
        self.last_value: float | None = None
        self.switch_step: int | None = None
        self.switch_episode: int | None = None
        self.checks = 0

    def start_replay_ratio(self) -> float:
        return self.params.low

    def on_build(self, agent: Agent) -> None:
        agent.replay_ratio = self.params.low
        if hasattr(agent, "track_critic_fau"):
            agent.track_critic_fau = True
        if "critic" not in agent.nets:
            raise ValueError(f"adaptive_rr: agent {agent.name!r} has no critic")

    def _critic_fau(self, agent: Agent, batch: Batch) -> torch.Tensor:
        value = agent.critic_fau() if hasattr(agent, "critic_fau") else None
        if value is None:
            with torch.no_grad():
                value = fau(agent.training_activations(batch)["critic"])
        return value

    def on_update(self, agent: Agent, batch: Batch, step: int) -> None:
        value = self._critic_fau(agent, batch).detach()
        if self.reference is None and self.params.average == "episode":
            self.reference = value.clone()
        self.sum = self.sum + value
        self.count += 1

    def on_episode_end(self, agent: Agent, episode: int, step: int) -> None:
        i = self.params.check_every
        if self.params.average == "episode" and i > 1 and episode % i == i - 1:
            self.sum, self.count = torch.zeros_like(self.sum), 0
        if episode % i != 0 or self.count == 0:
            return
        current = self.sum / self.count
        self.checks += 1
        self.last_value = float(current)  # one host read per check (every I episodes)
        plateau = self.reference is not None and abs(self.last_value - float(self.reference)) <= self.params.threshold
        if plateau and self.switch_step is None:
            agent.replay_ratio = self.params.high
            self.switch_step, self.switch_episode = step, episode
        self.reference = current
        self.sum, self.count = torch.zeros_like(self.sum), 0

    def log_metrics(self, agent: Agent, replay, step: int) -> dict[str, float]:
        out = {"adaptive_rr.switched": float(self.switch_step is not None), "adaptive_rr.checks": float(self.checks)}
        if self.switch_step is not None:
            out["adaptive_rr.switch_step"] = float(self.switch_step)
        if self.last_value is not None:
            out["adaptive_rr.critic_fau"] = self.last_value
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "sum": self.sum.cpu(),
            "count": self.count,
            "reference": None if self.reference is None else self.reference.cpu(),
            "last_value": self.last_value,
            "switch_step": self.switch_step,
            "switch_episode": self.switch_episode,
            "checks": self.checks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.ctx.device
        self.sum = state["sum"].to(dev)
        self.count = state["count"]
        self.reference = None if state["reference"] is None else state["reference"].to(dev)
        self.last_value = state["last_value"]
        self.switch_step, self.switch_episode = state["switch_step"], state["switch_episode"]
        self.checks = state["checks"]
