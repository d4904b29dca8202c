"""NE component 1, elastic topology growth: every Δ updates each sparse layer grows the inactive connections
with the largest |dense gradient|, and (through `dormant.DormantPruning`) removes a smaller number, so the
network expands from its initial sparsity towards a target density.

One `NetworkGrowth` per growing network ("critic", "actor", ...), configured by the `growth:` sub-model of NE's
params (`GrowthParams`, passed as it is). It owns the network's schedule clock, its phase (`growing` → `churn`
or `frozen` once the target density is reached) and exact host-side counts of active entries per layer. Those
counts are what every k is computed from, so a topology update needs no read of the device, except in `paper`
pruning mode, whose prune count depends on activations: it reads all of a network's prune counts in one
transfer per topology update (every Δ updates).

Schedule (the NE code, `NE/STL_Scheduler.py:434-588`):
- clock `network` (code): the network counts its own optimizer steps (the actor only steps on policy updates);
  a topology update happens when that count is a multiple of Δ and below T_end. Clock `agent`: the position is
  the agent's update counter, and a topology update happens on the network's first optimizer step in each new
  Δ-window. T_end is `t_end` or the run's number of updates (`methods.base.updates_in_run`).
- fraction r(t): `uniform` = a constant (the code's hard-coded 0.008) or `cosine` = ζ/2·(1+cos(πt/T_end)).
- per sparse layer: k_grow = ⌊G_l·r(t)⌋ with the growth space G_l fixed at the network's first topology update:
  `space: code`: s₀·N_l − n_l (the code reuses the initial sparsity s₀ = 0.8 as a density); `space: target`:
  (1 − target_sparsity)·N_l − n_l. A layer that starts denser than that has G_l < 0: `negative_space: clamp`
  sets G_l = 0 (the layer never changes); `negative_space: code` replays the official code (docs/deviations.md,
  `growth.negative_space`), whose negative prune count ⌊ω·⌊G_l·r⌋⌋ makes it *add* that many zero-valued
  connections per update until the layer is dense (HalfCheetah's critic input layer: +3 per update).
- the phase switches at the first topology update that finds the network's density ≥ 1 − target_sparsity:
  `churn` (the code's RigL branch: the clock restarts at 0 and each update prunes ⌊n_l·ζ_c/2·(1+cos(πt/T_end))⌋
  smallest-|w| weights and regrows as many by |gradient|, starting with this very update) or `frozen`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from neuroplastic.methods.base import Params
from neuroplastic.topology import ops
from neuroplastic.topology.masks import SparseLayer


class GrowthParams(Params):
    """NE's `growth:` sub-model (defaults: the paper-faithful `ne`; `ne_code` overrides them)."""

    enabled: bool = Field(
        True, description="Elastic growth on/off (ablation). Off: k_grow still caps pruning; grows nothing."
    )
    delta: int = Field(10_000, gt=0, description="Updates between topology updates (Δ).")
    schedule: Literal["uniform", "cosine"] = Field("cosine", description="Growth fraction schedule r(t).")
    uniform_fraction: float = Field(0.008, gt=0, le=1, description="r(t) of the `uniform` schedule (code: 0.008).")
    zeta: float | None = Field(
        None, gt=0, le=1, description="Amplitude ζ of `cosine` r(t)=ζ/2(1+cos(πt/T_end)); None: 2Δ/T_end (Σr ≈ 1)."
    )
    t_end: int | None = Field(
        None, gt=0, description="T_end in updates; None: the run's updates, (steps − start_steps) × replay ratio."
    )
    clock: Literal["network", "agent"] = Field(
        "agent", description="Schedule position: each network's own optimizer steps (code) or agent updates."
    )
    target_sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="Growth stops at this global sparsity.")
    space: Literal["code", "target"] = Field(
        "target", description="Growth space G_l = s₀·N − n₀ (code) or (1 − target_sparsity)·N − n₀."
    )
    negative_space: Literal["clamp", "code"] = Field(
        "clamp", description="G_l < 0 (a layer denser than the cap): 0, or the code's +⌊ω·⌊G_l·r⌋⌋ zero entries."
    )
    density_measure: Literal["linear", "all_weights"] = Field(
        "linear", description="Density for the stop test: linear weights, or all weight tensors incl. LayerNorm."
    )
    score: Literal["gradient", "random"] = Field("gradient", description="Grow by |dense grad| or at random.")
    init: Literal["zero", "lecun"] = Field("zero", description="Value of newly grown weights.")
    regrow_pruned: bool = Field(False, description="Entries pruned in an update may regrow in the same update.")
    after_target: Literal["freeze", "churn"] = Field(
        "freeze", description="After the target: fixed topology, or the code's RigL churn (cosine from churn_zeta)."
    )
    churn_zeta: float = Field(0.2, gt=0, le=1, description="Initial churn fraction after the target (code: 0.2).")
    moments: Literal["reset", "keep"] = Field("reset", description="Adam moments of grown/pruned entries.")
    adam_step_reset: bool = Field(False, description="Reset Adam's `step` of sparse weights at each growth update.")
    skip_step: bool = Field(
        True, description="Skip the optimizer step of an iteration whose topology update changed the topology."
    )


@dataclass
class UpdateRecord:
    """What the latest topology update of one network did, per layer key: (grown, pruned), and the growth
    budget k_grow each layer had (the prune cap is ⌊ω·k_grow⌋)."""

    phase: str
    position: int
    fraction: float
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    budget: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether any connection was grown or pruned."""
        return any(grown or pruned for grown, pruned in self.layers.values())


class NetworkGrowth:
    """Schedule, phase and topology updates of one growing network."""

    def __init__(
        self,
        role: str,
        net: nn.Module,
        layers: list[SparseLayer],
        params: GrowthParams,
        *,
        init_sparsity: float,
        t_end: int,
    ) -> None:
        self.role = role
        self.layers = [layer for layer in layers if layer.is_sparse]
        self.params = params
        self.init_sparsity = init_sparsity
        self.t_end = t_end
        self.zeta = params.zeta if params.zeta is not None else min(1.0, 2.0 * params.delta / t_end)
        # Entries that never change: dense linear layers, plus LayerNorm weights under the code's measure.
        dense = sum(layer.numel for layer in layers if not layer.is_sparse)
        if params.density_measure == "all_weights":
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

    # --- schedule -------------------------------------------------------------------------------
    def fraction(self, t: int) -> float:
        """Growth fraction r(t) of the growth space at schedule position t."""
        if self.params.schedule == "uniform":
            return self.params.uniform_fraction
        return self.zeta / 2.0 * (1.0 + math.cos(math.pi * t / self.t_end))

    def churn_fraction(self, t: int) -> float:
        return self.params.churn_zeta / 2.0 * (1.0 + math.cos(math.pi * t / self.t_end))

    # --- clock ----------------------------------------------------------------------------------
    def _next_position(self, update: int) -> int:
        return self.step + 1 if self.params.clock == "network" else update - self.offset

    def due(self, update: int) -> bool:
        """Whether the next optimizer call of this network (agent update `update`) has a topology update;
        changes nothing."""
        pos = self._next_position(update)
        return pos // self.params.delta > self.window and pos < self.t_end and self.phase != "frozen"

    def tick(self, update: int) -> bool:
        """Advance the clock for one optimizer call of this network; True if a topology update is due."""
        due = self.due(update)
        pos = self._next_position(update)
        if self.params.clock == "network":
            self.step = pos
        self.position = pos
        if due:
            self.window = pos // self.params.delta
        return due

    def force_due(self) -> None:
        """The next optimizer call of this network is due (while growth is active), whatever its position."""
        self.window = -1

    def _restart_clock(self, update: int) -> None:
        self.step, self.offset, self.window, self.position = 0, update, 0, 0

    # --- density --------------------------------------------------------------------------------
    def density(self) -> float:
        return (self.fixed_active + sum(self.n_active.values())) / self.total

    def target_reached(self) -> bool:
        zeros = self.total - self.fixed_active - sum(self.n_active.values())
        return zeros <= self.params.target_sparsity * self.total

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
        """One topology update; returns True if it changed the topology (the caller may then skip the optimizer
        step). An update that grows and prunes nothing (no growth, no dormant unit) leaves the step alone."""
        s = self.params
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
        frac = self.fraction(self.position) if growing else self.churn_fraction(self.position)
        plan = []
        record_budget: dict[str, int] = {}
        for layer in self.layers:
            n, big_n = self.n_active[layer.key], layer.numel
            if growing:
                if layer.key not in self.space:
                    density_cap = self.init_sparsity if s.space == "code" else 1.0 - s.target_sparsity
                    space = density_cap * big_n - n
                    self.space[layer.key] = space if s.negative_space == "code" else max(0.0, space)
                k_budget = int(self.space[layer.key] * frac)
                if k_budget < 0:
                    # The code's negative prune count keeps ⌊ω·|k|⌋ more top-|w| entries than are active, i.e.
                    # adds that many zero-valued connections (ties among zeros: arbitrary; here uniform).
                    k_add = min(-pruner.cap(k_budget), big_n - n) if pruner.enabled else 0
                    none = torch.zeros_like(layer.mask)
                    plan.append([layer, k_add, none, 0, True])
                    record_budget[layer.key] = k_budget
                    continue
                # The code caps pruning by the budget n_grow; the paper by the grow set |I_grow|, which near
                # full density is smaller than the budget (otherwise the network could shrink there).
                cap_base = k_budget if pruner.mode == "code" else min(k_budget, big_n - n)
                removed, n_removed = pruner.select(layer, n, cap_base, dormant, generator)
                k_grow = k_budget if s.enabled else 0
            else:
                k_grow = k_budget = int(n * frac)
                removed = ops.prune_magnitude(layer.weight, layer.mask, k_grow)
                n_removed = min(k_grow, n)
            plan.append([layer, k_grow, removed, n_removed, False])
            record_budget[layer.key] = k_budget

        unknown = [p for p in plan if p[3] is None]
        if unknown:  # paper pruning: one device read for the whole network
            counts = torch.stack([p[2].sum() for p in unknown]).tolist()
            for p, c in zip(unknown, counts, strict=True):
                p[3] = int(c)

        record = UpdateRecord(self.phase, self.position, frac, budget=record_budget)
        for layer, k_grow, removed, n_removed, arbitrary in plan:
            mask = layer.mask
            eligible = ~mask | removed if s.regrow_pruned else ~mask
            n_eligible = layer.numel - self.n_active[layer.key] + (n_removed if s.regrow_pruned else 0)
            n_grown = min(k_grow, n_eligible)
            if s.score == "random" or arbitrary:
                grown = ops.grow_random(eligible, k_grow, generator)
            else:
                grad = layer.weight.grad
                grown = ops.grow_gradient(
                    grad if grad is not None else torch.zeros_like(layer.weight), eligible, k_grow
                )
            new = grown & ~mask
            ops.init_grown_(layer.weight, new, "zero" if arbitrary else s.init, generator)
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
        return record.changed

    # --- checkpointing --------------------------------------------------------------------------
    _STATE = ("n_active", "space", "step", "offset", "window", "position", "phase", "topology_updates")
    _STATE_LOG = ("grown_since_log", "pruned_since_log")

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._STATE + self._STATE_LOG}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in self._STATE + self._STATE_LOG:
            setattr(self, k, state[k])
