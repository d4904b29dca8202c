"""NE component 1, elastic topology growth: every Δ updates each sparse layer grows the inactive connections
with the largest |dense gradient|, and (through `dormant.DormantPruning`) removes a smaller number, so the
network expands from its initial sparsity towards a target density.

One `NetworkGrowth` per growing network ("critic", "actor", ...). It owns the network's schedule clock, its
phase (`growing` → `churn` or `frozen` once the target density is reached) and exact host-side counts of
active entries per layer. Those counts are what every k is computed from, so a topology update needs no read
of the device, except in `paper` pruning mode, whose prune count depends on activations: it reads all of a
network's prune counts in one transfer per topology update (every Δ updates).

Schedule (spec §2.2 and the NE code `STL_Scheduler`):
- clock `network` (code): the network counts its own optimizer steps (the actor only steps on policy updates);
  a topology update happens when that count is a multiple of Δ and below T_end. Clock `agent`: the position is
  the agent's update counter, and a topology update happens on the network's first optimizer step in each new
  Δ-window.
- fraction r(t): `uniform` = a constant (the code's hard-coded 0.008) or `cosine` = ζ/2·(1+cos(πt/T_end)).
- per sparse layer: k_grow = ⌊G_l·r(t)⌋ with the growth space G_l fixed at the network's first topology update:
  `code`: max(0, s₀·N_l − n_l) (the code reuses the initial sparsity s₀ = 0.8 as a density; clamped at 0, the code
  lets it go negative, spec §8 #8); `target`: max(0, (1 − target_sparsity)·N_l − n_l).
- the phase switches at the first topology update that finds the network's density ≥ 1 − target_sparsity:
  `churn` (the code's RigL branch: the clock restarts at 0 and each update prunes ⌊n_l·ζ_c/2·(1+cos(πt/T_end))⌋
  smallest-|w| weights and regrows as many by |gradient|, starting with this very update) or `frozen`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from neuroplastic.topology import ops
from neuroplastic.topology.masks import SparseLayer

SCHEDULES = ("uniform", "cosine")
CLOCKS = ("network", "agent")
GROWTH_SPACES = ("code", "target")
AFTER_TARGET = ("freeze", "churn")
PHASES = ("growing", "churn", "frozen")


@dataclass(frozen=True)
class GrowthSettings:
    delta: int
    t_end: int
    schedule: str = "uniform"
    uniform_fraction: float = 0.008
    zeta: float = 0.5
    clock: str = "network"
    init_sparsity: float = 0.8
    target_sparsity: float = 0.25
    growth_space: str = "code"
    density_measure: str = "all_weights"
    growth: bool = True
    growth_score: str = "gradient"
    grown_init: str = "zero"
    regrow_pruned: bool = True
    after_target: str = "churn"
    churn_zeta: float = 0.2
    moments: str = "keep"
    adam_step_reset: bool = False

    def fraction(self, t: int) -> float:
        """Growth fraction r(t) of the growth space at schedule position t."""
        if self.schedule == "uniform":
            return self.uniform_fraction
        return self.zeta / 2.0 * (1.0 + math.cos(math.pi * t / self.t_end))

    def churn_fraction(self, t: int) -> float:
        return self.churn_zeta / 2.0 * (1.0 + math.cos(math.pi * t / self.t_end))


@dataclass
class UpdateRecord:
    """What the latest topology update of one network did, per layer key: (grown, pruned), and the growth
    budget k_grow each layer had (the prune cap is ⌊ω·k_grow⌋)."""

    phase: str
    position: int
    fraction: float
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    budget: dict[str, int] = field(default_factory=dict)


class NetworkGrowth:
    """Schedule, phase and topology updates of one growing network."""

    def __init__(self, role: str, net: nn.Module, layers: list[SparseLayer], settings: GrowthSettings) -> None:
        self.role = role
        self.layers = [layer for layer in layers if layer.is_sparse]
        self.settings = settings
        # Entries that never change: dense linear layers, plus LayerNorm weights under the code's measure.
        dense = sum(layer.numel for layer in layers if not layer.is_sparse)
        if settings.density_measure == "all_weights":
            dense += sum(
                m.weight.numel() for m in net.modules() if isinstance(m, nn.LayerNorm) and m.weight is not None
            )
        self.fixed_active = dense
        self.total = dense + sum(layer.numel for layer in self.layers)
        # Host mirror of each sparse layer's active count (one read at build; exact afterwards).
        counts = torch.stack([layer.mask.sum() for layer in self.layers]).tolist() if self.layers else []
        self.n_active: dict[str, int] = {layer.key: int(c) for layer, c in zip(self.layers, counts, strict=True)}
        self.space: dict[str, float] = {}
        self.step = 0  # code clock: this network's optimizer calls since the start (or since the switch)
        self.offset = 0  # agent clock: update at which the current phase's clock started
        self.window = 0  # index of the last Δ-window that had a topology update
        self.position = 0
        self.phase = "growing"
        self.topology_updates = 0
        self.grown_since_log = 0
        self.pruned_since_log = 0
        self.last: UpdateRecord | None = None

    # --- clock ----------------------------------------------------------------------------------
    def _next_position(self, update: int) -> int:
        return self.step + 1 if self.settings.clock == "network" else update - self.offset

    def due(self, update: int) -> bool:
        """Whether the next optimizer call of this network (agent update `update`) has a topology update;
        changes nothing (the captured update asks before deciding to run an update eagerly)."""
        pos = self._next_position(update)
        return pos // self.settings.delta > self.window and pos < self.settings.t_end and self.phase != "frozen"

    def tick(self, update: int) -> bool:
        """Advance the clock for one optimizer call of this network; True if a topology update is due."""
        due = self.due(update)
        pos = self._next_position(update)
        if self.settings.clock == "network":
            self.step = pos
        self.position = pos
        if due:
            self.window = pos // self.settings.delta
        return due

    def _restart_clock(self, update: int) -> None:
        self.step, self.offset, self.window, self.position = 0, update, 0, 0

    # --- density --------------------------------------------------------------------------------
    def density(self) -> float:
        return (self.fixed_active + sum(self.n_active.values())) / self.total

    def target_reached(self) -> bool:
        zeros = self.total - self.fixed_active - sum(self.n_active.values())
        return zeros <= self.settings.target_sparsity * self.total

    # --- topology update ------------------------------------------------------------------------
    @torch.no_grad()
    def update(
        self,
        update: int,
        optimizer: torch.optim.Optimizer,
        pruner: Any,
        dormant: dict | None,
        generator: torch.Generator,
    ) -> bool:
        """One topology update; returns True if it ran (the caller may then skip the optimizer step)."""
        s = self.settings
        if self.phase == "growing" and self.target_reached():
            if s.after_target == "churn" and s.target_sparsity > 0:
                self.phase = "churn"
                self._restart_clock(update)
            else:
                self.phase = "frozen"
                return False
        if self.phase == "frozen" or not self.layers:
            return False

        growing = self.phase == "growing"
        frac = s.fraction(self.position) if growing else s.churn_fraction(self.position)
        plan = []
        record_budget: dict[str, int] = {}
        for layer in self.layers:
            n, big_n = self.n_active[layer.key], layer.numel
            if growing:
                if layer.key not in self.space:
                    density_cap = s.init_sparsity if s.growth_space == "code" else 1.0 - s.target_sparsity
                    self.space[layer.key] = max(0.0, density_cap * big_n - n)
                k_budget = int(self.space[layer.key] * frac)
                # The code caps pruning by the budget n_grow; the paper by the grow set |I_grow|, which near
                # full density is smaller than the budget (otherwise the network could shrink there).
                cap_base = k_budget if pruner.mode == "code" else min(k_budget, big_n - n)
                removed, n_removed = pruner.select(layer, n, cap_base, dormant, generator)
                k_grow = k_budget if s.growth else 0
            else:
                k_grow = k_budget = int(n * frac)
                removed = ops.prune_magnitude(layer.weight, layer.mask, k_grow)
                n_removed = min(k_grow, n)
            plan.append([layer, k_grow, removed, n_removed])
            record_budget[layer.key] = k_budget

        unknown = [p for p in plan if p[3] is None]
        if unknown:  # paper pruning: one device read for the whole network
            counts = torch.stack([p[2].sum() for p in unknown]).tolist()
            for p, c in zip(unknown, counts, strict=True):
                p[3] = int(c)

        record = UpdateRecord(self.phase, self.position, frac, budget=record_budget)
        for layer, k_grow, removed, n_removed in plan:
            mask = layer.mask
            eligible = ~mask | removed if s.regrow_pruned else ~mask
            n_eligible = layer.numel - self.n_active[layer.key] + (n_removed if s.regrow_pruned else 0)
            n_grown = min(k_grow, n_eligible)
            if s.growth_score == "random":
                grown = ops.grow_random(eligible, k_grow, generator)
            else:
                grad = layer.weight.grad
                grown = ops.grow_gradient(
                    grad if grad is not None else torch.zeros_like(layer.weight), eligible, k_grow
                )
            new = grown & ~mask
            ops.init_grown_(layer.weight, new, s.grown_init, generator)
            layer.set_mask((mask & ~removed) | grown)
            if s.moments == "reset":
                ops.reset_adam_state_(optimizer, layer.weight, new | (removed & ~grown))
            if s.adam_step_reset and growing:
                ops.reset_adam_state_(optimizer, layer.weight, None, reset_step=True)
            self.n_active[layer.key] += n_grown - n_removed
            record.layers[layer.key] = (n_grown, n_removed)
            self.grown_since_log += n_grown
            self.pruned_since_log += n_removed
        self.topology_updates += 1
        self.last = record
        return True

    # --- checkpointing --------------------------------------------------------------------------
    _STATE = ("n_active", "space", "step", "offset", "window", "position", "phase", "topology_updates")
    _STATE_LOG = ("grown_since_log", "pruned_since_log")

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._STATE + self._STATE_LOG}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._STATE + self._STATE_LOG:
            setattr(self, k, state[k])
