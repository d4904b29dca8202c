"""NE component 3, experience review (neuron consolidation): at some updates the training batch is drawn
from the oldest part of the replay window instead of all of it (NE code `stl/TD3.py:93-106`, `NE/utils.py:98-117`).

Configured by the `review:` sub-model of NE's params (`ReviewParams`, passed as it is); `enabled: false` never
reviews (the ablation, and `ne_code`'s default: the code's `--recall` is off). `mode`:
- `paper`: every `every` updates measure the τ-dormant ratio d of network `net` on a replay batch of
  `batch` transitions; the fluctuation ∇f is the mean |d_k − d_{k−1}| over the last `window` measurements; the
  dynamic threshold ε(t) decays linearly from `eps_start` to `eps_end` over the first `eps_decay`·T_end
  updates and then stays at `eps_end` (the reviewers report ε plateauing before mid-training). T_end is NE's
  (the run's updates by default). While ∇f < ε(t), each update reviews with probability `prob`.
  (`when="above"` reviews while ∇f > ε(t) instead: the reviewers call ε's lowest value the strongest
  consolidation, which fits that reading better.)
- `code`: the official code's rule: with critic FAU f < `awaken` (0.4), gate = 1/(1 + e^(awaken − f)·Tamp)
  (gate ≥ 0.6 → 0.4) and each update reviews when U(0,1) ≥ gate, i.e. with probability ≈ 0.47–0.57. The code
  measures f on a fresh batch at *every* update; here f is measured every `every` updates (one small forward
  pass and one device read each time), which keeps the update path free of host syncs.

A review batch is `replay.sample(batch_size, oldest=fraction)`: uniform over the oldest 30% of the
current buffer window by default. Coins come from the method's own numpy generator; measurement batches from
its own torch generator; both are checkpointed.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field

from neuroplastic import metrics
from neuroplastic.methods.base import Params

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Batch, Replay


class ReviewParams(Params):
    """NE's `review:` sub-model (defaults: the paper-faithful `ne`)."""

    enabled: bool = Field(True, description="Experience review on/off (ablation).")
    mode: Literal["paper", "code"] = Field("paper", description="Trigger: dormant-ratio fluctuation, or critic FAU.")
    net: str = Field("critic", description="Network whose dormant ratio / FAU drives the trigger.")
    every: int = Field(1000, gt=0, description="Updates between trigger measurements.")
    fraction: float = Field(0.3, gt=0.0, le=1.0, description="Oldest fraction of the buffer window.")
    prob: float = Field(0.5, ge=0.0, le=1.0, description="Paper mode: P(review) per update while triggered.")
    tau: float = Field(0.1, ge=0.0, description="Paper mode: τ of the tracked dormant ratio.")
    window: int = Field(10, gt=0, description="Paper mode: measurements averaged into the fluctuation ∇f.")
    eps_start: float = Field(0.02, ge=0.0, description="Paper mode: threshold ε at t=0.")
    eps_end: float = Field(0.002, ge=0.0, description="Paper mode: ε plateau.")
    eps_decay: float = Field(0.5, gt=0.0, description="Paper mode: ε reaches its plateau at this fraction of T_end.")
    when: Literal["below", "above"] = Field(
        "below", description="Paper mode: review while ∇f < ε (issue) or while ∇f > ε (reviewers' Figure 5 reading)."
    )
    awaken: float = Field(0.4, ge=0.0, le=1.0, description="Code mode: FAU threshold (awaken).")
    tamp: float = Field(0.9, gt=0.0, description="Code mode: gate temperature (Tamp).")
    batch: int = Field(256, gt=0, description="Batch size of trigger measurements.")


class ExperienceReview:
    def __init__(
        self,
        params: ReviewParams,
        *,
        t_end: int,
        batch_size: int,
        seed_sequence: np.random.SeedSequence,
        device: torch.device,
    ) -> None:
        self.params = params
        self.mode = params.mode
        self.t_end, self.batch_size = t_end, batch_size
        coin_seed, batch_seed = seed_sequence.spawn(2)
        self.rng = np.random.default_rng(coin_seed)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(batch_seed.generate_state(1)[0]))
        self.history: deque[float] = deque(maxlen=params.window + 1)
        self.signal = math.nan  # latest dormant ratio (paper) or critic FAU (code)
        self.fluctuation = math.nan
        self.threshold = math.nan
        self.gate = math.nan
        self.active = False  # paper: ∇f < ε; code: FAU < awaken
        self.fired_since_log = 0
        self.calls_since_log = 0
        self.fired_total = 0

    @property
    def enabled(self) -> bool:
        return self.params.enabled

    def eps(self, update: int) -> float:
        p = self.params
        horizon = max(1.0, p.eps_decay * self.t_end)
        progress = min(1.0, update / horizon)
        return p.eps_start + (p.eps_end - p.eps_start) * progress

    @torch.no_grad()
    def measure(self, agent: Agent, replay: Replay, update: int) -> None:
        """Refresh the trigger state (one forward pass and one device read)."""
        p = self.params
        batch = replay.sample(p.batch, generator=self.generator)
        layers = agent.hidden_activations(batch)[p.net]
        if self.mode == "paper":
            self.signal = float(metrics.dormant_ratio(layers, p.tau))
            self.history.append(self.signal)
            diffs = np.abs(np.diff(np.asarray(self.history)))
            self.fluctuation = float(diffs.mean()) if diffs.size else math.nan
            self.threshold = self.eps(update)
            below = self.fluctuation < self.threshold
            self.active = bool(diffs.size > 0 and (below if p.when == "below" else not below))
        else:
            self.signal = float(metrics.fau(layers))
            gate = 1.0 / (1.0 + math.exp(p.awaken - self.signal) * p.tamp)
            self.gate = 0.4 if gate >= 0.6 else gate
            self.active = self.signal < p.awaken

    def fire(self) -> bool:
        """Draw this update's coin (only while the trigger is active)."""
        if not self.active:
            return False
        u = self.rng.random()
        return bool(u < self.params.prob) if self.mode == "paper" else bool(u >= self.gate)

    def sample(self, agent: Agent, replay: Replay, update: int) -> Batch | None:
        """The review batch for update `update`, or None to train on the uniform batch."""
        if not self.enabled or len(replay) == 0:
            return None
        if update % self.params.every == 0 or update == 1:
            self.measure(agent, replay, update)
        self.calls_since_log += 1
        if not self.fire():
            return None
        self.fired_since_log += 1
        self.fired_total += 1
        return replay.sample(self.batch_size, oldest=self.params.fraction)

    def log_metrics(self) -> dict[str, float]:
        out = {
            "review.fired_frac": self.fired_since_log / self.calls_since_log if self.calls_since_log else 0.0,
            "review.fired_total": float(self.fired_total),
            "review.active": float(self.active),
        }
        if self.mode == "paper":
            out.update(
                {
                    "review.dormant": self.signal,
                    "review.fluctuation": self.fluctuation,
                    "review.threshold": self.threshold,
                }
            )
        else:
            out.update({"review.critic_fau": self.signal, "review.gate": self.gate})
        self.fired_since_log = self.calls_since_log = 0
        # Statistics that are not defined (review disabled, no measurement yet, too few for a fluctuation) are
        # left out.
        return {k: v for k, v in out.items() if not math.isnan(v)}

    _STATE = (
        "signal",
        "fluctuation",
        "threshold",
        "gate",
        "active",
        "fired_since_log",
        "calls_since_log",
        "fired_total",
    )

    def state_dict(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in self._STATE}
        state["history"] = list(self.history)
        state["rng"] = self.rng.bit_generator.state
        state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._STATE:
            setattr(self, k, state[k])
        self.history = deque(state["history"], maxlen=self.params.window + 1)
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
