"""NE component 3, experience review (neuron consolidation): at some updates the training batch is drawn
from the oldest part of the replay window instead of all of it (spec §4).

`review_mode`:
- `paper`: every `review_every` updates measure the τ-dormant ratio d of network `review_net` on a replay
  batch; the fluctuation ∇f is the mean |d_k − d_{k−1}| over the last `review_window` measurements; the
  dynamic threshold ε(t) decays linearly from `eps_start` to `eps_end` over the first `eps_decay`·T_end
  updates and then stays at `eps_end` (the reviewers report ε plateauing before mid-training). While ∇f < ε(t),
  each update reviews with probability `review_prob`. (`when="above"` reviews while ∇f > ε(t) instead: the
  reviewers call ε's lowest value the strongest consolidation, which fits that reading better.)
- `code`: the official code's rule: with critic FAU f < `awaken` (0.4), gate = 1/(1 + e^(awaken − f)·Tamp)
  (gate ≥ 0.6 → 0.4) and each update reviews when U(0,1) ≥ gate, i.e. with probability ≈ 0.47–0.57. The code
  measures f on a fresh batch at *every* update; here f is measured every `review_every` updates (one small
  forward pass and one device read each time), which keeps the update path free of host syncs.
- `off`: never.

A review batch is `replay.sample(batch_size, oldest=early_fraction)`: uniform over the oldest 30% of the
current buffer window by default. Coins come from the method's own numpy generator; measurement batches from
its own torch generator; both are checkpointed.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from neuroplastic import metrics

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Batch, Replay

REVIEW_MODES = ("paper", "code", "off")


class ExperienceReview:
    def __init__(
        self,
        mode: str,
        *,
        net: str,
        every: int,
        early_fraction: float,
        t_end: int,
        batch_size: int,
        measure_batch: int,
        seed_sequence: np.random.SeedSequence,
        device: torch.device,
        prob: float = 0.5,
        tau: float = 0.1,
        window: int = 10,
        eps_start: float = 0.02,
        eps_end: float = 0.002,
        eps_decay: float = 0.5,
        awaken: float = 0.4,
        tamp: float = 0.9,
        when: str = "below",
    ) -> None:
        if mode not in REVIEW_MODES:
            raise ValueError(f"review_mode {mode!r} not in {REVIEW_MODES}")
        self.mode, self.net, self.every, self.early_fraction = mode, net, every, early_fraction
        self.t_end, self.batch_size, self.measure_batch = t_end, batch_size, measure_batch
        self.prob, self.tau, self.window = prob, tau, window
        self.eps_start, self.eps_end, self.eps_decay = eps_start, eps_end, eps_decay
        self.awaken, self.tamp = awaken, tamp
        if when not in ("below", "above"):
            raise ValueError(f"review_when {when!r} not in ('below', 'above')")
        self.when = when
        coin_seed, batch_seed = seed_sequence.spawn(2)
        self.rng = np.random.default_rng(coin_seed)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(batch_seed.generate_state(1)[0]))
        self.history: deque[float] = deque(maxlen=window + 1)
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
        return self.mode != "off"

    def eps(self, update: int) -> float:
        horizon = max(1.0, self.eps_decay * self.t_end)
        progress = min(1.0, update / horizon)
        return self.eps_start + (self.eps_end - self.eps_start) * progress

    @torch.no_grad()
    def measure(self, agent: Agent, replay: Replay, update: int) -> None:
        """Refresh the trigger state (one forward pass and one device read)."""
        batch = replay.sample(self.measure_batch, generator=self.generator)
        layers = agent.hidden_activations(batch)[self.net]
        if self.mode == "paper":
            self.signal = float(metrics.dormant_ratio(layers, self.tau))
            self.history.append(self.signal)
            diffs = np.abs(np.diff(np.asarray(self.history)))
            self.fluctuation = float(diffs.mean()) if diffs.size else math.nan
            self.threshold = self.eps(update)
            below = self.fluctuation < self.threshold
            self.active = bool(diffs.size > 0 and (below if self.when == "below" else not below))
        else:
            self.signal = float(metrics.fau(layers))
            gate = 1.0 / (1.0 + math.exp(self.awaken - self.signal) * self.tamp)
            self.gate = 0.4 if gate >= 0.6 else gate
            self.active = self.signal < self.awaken

    def fire(self) -> bool:
        """Draw this update's coin (only while the trigger is active)."""
        if not self.active:
            return False
        u = self.rng.random()
        return bool(u < self.prob) if self.mode == "paper" else bool(u >= self.gate)

    def sample(self, agent: Agent, replay: Replay, update: int) -> Batch | None:
        """The review batch for update `update`, or None to train on the uniform batch."""
        if not self.enabled or len(replay) == 0:
            return None
        if update % self.every == 0 or update == 1:
            self.measure(agent, replay, update)
        self.calls_since_log += 1
        if not self.fire():
            return None
        self.fired_since_log += 1
        self.fired_total += 1
        return replay.sample(self.batch_size, oldest=self.early_fraction)

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
        elif self.mode == "code":
            out.update({"review.critic_fau": self.signal, "review.gate": self.gate})
        self.fired_since_log = self.calls_since_log = 0
        # Statistics that are not defined yet (no measurement, or too few for a fluctuation) are left out.
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
        self.history = deque(state["history"], maxlen=self.window + 1)
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
