"""The sparse-training family of Graesser, Evci, Elsen, Castro ("The State of Sparse Training in Deep RL", ICML 2022)
as method plug-ins: `static`, `set`, `rigl` and `gmp` (gradual magnitude pruning); google-research/rigl, `rigl/rl/`.

Every method sparsifies the `MaskedLinear` layers of the networks in `nets` (default actor and critic), each
network on its own: the layer-wise sparsities come from ERK (or uniform) at the global `sparsity`, over every
linear layer including the output layer (the study wraps it, `sparse_output_layer=True`; ERK then leaves a 1-unit
Q output dense). LayerNorm weights, biases and SAC's temperature are never masked or counted.

- `static`: a random mask with the exact per-layer count at build, fixed for the whole run.
- `set`:    the static start, then at each mask update drop the ⌊f·n⌋ active weights of smallest |w| per layer
            and regrow as many uniformly at random among the positions not kept (just-dropped ones included).
- `rigl`:   as SET, but regrow the positions with the largest |dense gradient| of the network's own loss on
            the current minibatch (`weight.grad` right after the optimizer step: masked weights are held at
            zero and the forward pass is dense, so it is the gradient w.r.t. W⊙M, spec pitfall (b)).
- `gmp`:    dense start; from `begin_fraction` to `end_fraction` of training, every ΔT updates, each layer is
            pruned to s_l(t) = s_l + (s_i − s_l)(1 − (t − t0)/(t_end − t0))³ by removing its smallest-|w|
            active weights (per-layer finals s_l from ERK/uniform at `sparsity`); pruned weights stay 0.

Grown connections that were not active before the update start at 0 with zeroed Adam moments; just-dropped
connections that are regrown keep their value and moments (`reinit_when_same=False`, rigl issue #5).

Clock. Positions are the study's `train_step_counter`: t = (agent update index) − 1, so the first gradient
update is t = 0. Fractions of training are fractions of the run's total number of gradient updates,
U = `total_updates` or `updates_in_run` = ⌊(steps − start_steps) × replay_ratio⌋ (on-policy PPO: its iterations ×
epochs × minibatches, `agent.planned_updates`): in the study's SAC runs (1M
train iterations, one update each) "mask updates until 800k" is 0.8·U, and GMP's 200k→800k is 0.2·U → 0.8·U.
Mask updates of SET/RigL happen at t = 0, ΔT, 2ΔT, … ≤ ⌊stop_fraction·U⌋ with drop fraction
f(t) = f0·½(1 + cos(π t / T_stop)) (Keras CosineDecay, alpha 0). GMP prunes at t = t0, t0 + ΔT, … ≤ t_end,
and at t_end itself.
A network whose optimizer does not step at every update (TD3's delayed actor) does a due update at its first
optimizer step at or after the scheduled point, with the schedule value of that point.

Hooks: `on_build` (masks, sparse init), `before_update` (sync the mask copies, announce a due mask update),
`extra_loss` (weight decay: λ·Σ‖W‖² over the role's linear kernels, the Keras L2 regulariser the study puts on
every layer), `after_optimizer_step` (re-apply the masks, then the mask update if one is due, then mask the
targets), `after_target_update` (targets ← targets ⊙ online masks), `log_metrics`. Counts of active weights are
mirrored on the host, so no mask update reads the device.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from neuroplastic.methods._common import Nets, select_nets
from neuroplastic.methods.base import EVENT, Method, Params, RunContext, updates_in_run
from neuroplastic.nets import sum_of_squares
from neuroplastic.topology import ops
from neuroplastic.topology.distribution import layer_sparsities
from neuroplastic.topology.masks import SparseLayer, Topology, budget_shapes

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Replay


class SparseParams(Params):
    """Parameters every sparse-training method shares (defaults: the study's SAC-MuJoCo sparse and pruning configs
    at google-research/rigl d39fc7d, `sac_mujoco_{sparse,pruning}_config.gin`)."""

    sparsity: float = Field(
        0.9, ge=0.5, le=0.99, description="Global sparsity S of each sparse network (final sparsity for GMP)."
    )
    distribution: Literal["erk", "uniform"] = Field("erk", description="Layer-wise sparsity at S.")
    nets: Nets = Field("both", description="Networks (roles of agent.nets) that are sparse; their MaskedLinear layers.")
    weight_decay: float = Field(1e-6, ge=0.0, description="λ of the L2 term λ·Σ‖W‖² on the roles' kernels.")
    total_updates: int | None = Field(
        None, gt=0, description="Gradient updates that make 100% of training; None: (steps − start_steps)·RR."
    )


class StaticParams(SparseParams):
    sparse_init: bool = Field(
        True, description="Sparsity-aware init: redraw active weights Glorot-uniform with the mask's fans."
    )


class DynamicParams(StaticParams):
    drop_fraction: float = Field(0.5, ge=0.0, le=1.0, description="Initial drop fraction f0.")
    drop_schedule: Literal["cosine", "constant"] = Field("cosine", description="Decay of the drop fraction.")
    delta: int = Field(1000, gt=0, description="Mask update interval ΔT in gradient updates.")
    stop_fraction: float = Field(0.8, ge=0.0, le=1.0, description="Mask updates stop at this fraction of U.")


class GMPParams(SparseParams):
    weight_decay: float = Field(1e-4, ge=0.0, description="λ of λ·Σ‖W‖² (the study's dense value, inherited).")
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="s_i, the sparsity at t0.")
    delta: int = Field(1000, gt=0, description="Pruning interval ΔT in gradient updates.")
    begin_fraction: float = Field(0.2, ge=0.0, le=1.0, description="t0 as a fraction of U.")
    end_fraction: float = Field(0.8, ge=0.0, le=1.0, description="t_end as a fraction of U.")
    power: float = Field(3.0, gt=0.0, description="Exponent of the polynomial schedule (Zhu & Gupta: 3).")

    @model_validator(mode="after")
    def _schedule(self) -> GMPParams:
        if self.begin_fraction > self.end_fraction:
            raise ValueError(f"begin_fraction {self.begin_fraction} > end_fraction {self.end_fraction}")
        if self.initial_sparsity > self.sparsity:
            raise ValueError(f"initial_sparsity {self.initial_sparsity} > sparsity {self.sparsity}")
        return self


def cosine_fraction(f0: float, t: int, t_end: int) -> float:
    """f0·½(1 + cos(π·min(t, T)/T)): Keras CosineDecay with alpha 0 (T ≥ 1)."""
    t_end = max(1, t_end)
    return f0 * 0.5 * (1.0 + math.cos(math.pi * min(t, t_end) / t_end))


def polynomial_sparsity(s_init: float, s_final: float, t: int, t0: int, t_end: int, power: float) -> float:
    """Zhu & Gupta / TF-MOT PolynomialDecay: s_f + (s_i − s_f)(1 − p)^power, p = clip((t − t0)/(t_end − t0))."""
    progress = 1.0 if t_end <= t0 else min(1.0, max(0.0, (t - t0) / (t_end - t0)))
    return s_final + (s_init - s_final) * (1.0 - progress) ** power


class SparseTraining(Method):
    """Shared machinery: topology, seeded generator, host counts, weight decay, schedule cursor, targets."""

    Params: ClassVar[type[SparseParams]] = SparseParams
    params: SparseParams
    # Whether mask updates regrow what they drop (SET/RigL: constant density) or only prune (GMP).
    regrows: ClassVar[bool] = False

    def __init__(self, params: SparseParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        seed = np.random.SeedSequence([ctx.seed, ctx.method_index, 0x5350_4152]).generate_state(1)[0]
        self.generator = torch.Generator(device=ctx.device)
        self.generator.manual_seed(int(seed))
        self.topology: Topology | None = None
        self.total_updates = 0
        # Scheduled positions t of mask updates (sorted), and per role the index of the next one due.
        self.points: list[int] = []
        self.cursor: dict[str, int] = {}
        self.layer_sparsity: dict[str, dict[str, float]] = {}  # role → layer name → (final) sparsity
        self.n_active: dict[str, int] = {}  # layer key → active entries (exact host mirror)
        self.mask_updates: dict[str, int] = {}
        self.dropped_since_log: dict[str, int] = {}
        self._kernels: dict[str, list[torch.Tensor]] = {}
        # Networks whose mask update falls in the current update (set by `before_update`, the update's host side).
        self.due_roles: tuple[str, ...] = ()

    # --- build ----------------------------------------------------------------------------------
    def on_build(self, agent: Agent) -> None:
        p = self.params
        roles = select_nets(p.nets, agent, self.name)
        self.topology = topo = Topology(agent.nets, roles)
        empty = [r for r in roles if not topo.layers[r]]
        if empty:
            raise ValueError(f"{self.name}.nets: networks {empty} have no linear layers to sparsify")
        self.cursor = dict.fromkeys(roles, 0)
        self.mask_updates = dict.fromkeys(roles, 0)
        self.dropped_since_log = dict.fromkeys(roles, 0)
        self.total_updates = p.total_updates or updates_in_run(self.ctx, agent)
        self._kernels = {r: [layer.weight for layer in topo.layers[r]] for r in roles}
        self.points = self.schedule()
        for role in roles:
            self.build_role(role)
        for layer in topo.all_layers():
            self.n_active[layer.key] = layer.numel
        sparse = topo.sparse_layers()
        if sparse:  # one read at build; the counts are exact host mirrors afterwards
            counts = torch.stack([layer.mask.sum() for layer in sparse]).tolist()
            for layer, count in zip(sparse, counts, strict=True):
                self.n_active[layer.key] = int(count)

    def schedule(self) -> list[int]:
        """Positions t of the mask updates (none for a static topology)."""
        return []

    def build_role(self, role: str) -> None:
        raise NotImplementedError

    def init_sparse_masks(self, role: str, sparse_init: bool) -> None:
        """Random masks with the exact per-layer count at the role's ERK/uniform sparsities."""
        p, topo = self.params, self.topology
        self.layer_sparsity[role] = topo.init_masks(
            role,
            p.sparsity,
            distribution=p.distribution,
            init="random",
            dense_first_last=False,
            count_norms=False,
            generator=self.generator,
        )
        if sparse_init:
            for layer in topo.sparse_layers(role):
                ops.init_sparse_glorot_(layer.weight, layer.mask, self.generator)

    # --- update path ----------------------------------------------------------------------------
    def extra_loss(self, agent: Agent, net: str) -> torch.Tensor | None:
        if self.params.weight_decay == 0.0 or net not in self._kernels:
            return None
        return self.params.weight_decay * sum_of_squares(self._kernels[net])

    def due_point(self, role: str, t: int) -> int:
        """The latest scheduled position ≤ t not yet served for `role` (one is due: `before_update` said so)."""
        j = bisect.bisect_right(self.points, t) - 1
        self.cursor[role] = j + 1
        return self.points[j]

    def force_next_event(self, agent: Agent) -> None:
        if self.event_period() is None:
            super().force_next_event(agent)
        # A point at the current update count, which the next update serves (also before GMP's first point).
        j = bisect.bisect_left(self.points, agent.updates)
        if j == len(self.points) or self.points[j] != agent.updates:
            self.points.insert(j, agent.updates)
        for role in self.cursor:
            self.cursor[role] = min(self.cursor[role], j)

    def before_update(self, agent: Agent, update: int, roles: tuple[str, ...]) -> Hashable:
        topo = self.topology
        if topo is None:
            return ()
        # A mask update is due for a network when its next scheduled position t = update − 1 has come.
        self.due_roles = tuple(
            r
            for r in roles
            if r in topo.layers and self.cursor[r] < len(self.points) and self.points[self.cursor[r]] <= update - 1
        )
        topo.sync_(agent.targets)
        if self.due_roles:
            return EVENT
        # GMP starts dense: its first pruning step turns layers sparse, which changes the hooks' tensor work.
        return tuple(layer.is_sparse for layer in topo.all_layers())

    def after_optimizer_step(self, agent: Agent, net: str, update: int) -> None:
        topo = self.topology
        if topo is None or net not in topo.layers:
            return
        topo.apply_(net)
        if net not in self.due_roles:
            return
        self.update_masks(agent, net, self.due_point(net, update - 1))
        self.mask_updates[net] += 1
        # The targets follow the new topology at once, not only at the next target update.
        topo.sync_(agent.targets, [net])
        topo.mask_targets_(net)

    def update_masks(self, agent: Agent, role: str, t: int) -> None:
        raise NotImplementedError

    def after_target_update(self, agent: Agent) -> None:
        for role in self.topology.roles:
            self.topology.mask_targets_(role)

    # --- logging and checkpointing --------------------------------------------------------------
    def log_metrics(self, agent: Agent, replay: Replay, step: int) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.points:
            for role in self.topology.roles:
                out[f"topology.updates.{role}"] = float(self.mask_updates[role])
                out[f"topology.pruned.{role}"] = float(self.dropped_since_log[role])
                if self.regrows:
                    out[f"topology.grown.{role}"] = float(self.dropped_since_log[role])
                self.dropped_since_log[role] = 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "cursor": dict(self.cursor),
            "n_active": dict(self.n_active),
            "mask_updates": dict(self.mask_updates),
            "dropped_since_log": dict(self.dropped_since_log),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.cursor = dict(state["cursor"])
        self.n_active = dict(state["n_active"])
        self.mask_updates = dict(state["mask_updates"])
        self.dropped_since_log = dict(state["dropped_since_log"])


class Static(SparseTraining):
    """`static`: a random ERK/uniform mask at build, never changed."""

    name: ClassVar[str] = "static"
    Params: ClassVar[type[StaticParams]] = StaticParams
    params: StaticParams

    def build_role(self, role: str) -> None:
        self.init_sparse_masks(role, self.params.sparse_init)


class DynamicSparse(Static):
    """Drop the smallest-|w| fraction of each sparse layer, regrow as many by `grow_scores`."""

    Params: ClassVar[type[DynamicParams]] = DynamicParams
    params: DynamicParams
    regrows: ClassVar[bool] = True
    smoke_params: ClassVar[dict[str, Any]] = {"delta": 100}

    def __init__(self, params: DynamicParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        self.last_drop_fraction: dict[str, float] = {}

    def build_role(self, role: str) -> None:
        super().build_role(role)
        self.last_drop_fraction[role] = 0.0

    @property
    def stop_update(self) -> int:
        """T_stop: the last position at which masks may change."""
        return int(self.params.stop_fraction * self.total_updates)

    def schedule(self) -> list[int]:
        return list(range(0, self.stop_update + 1, self.params.delta))

    def event_period(self) -> int | None:
        return self.params.delta

    def drop_fraction(self, t: int) -> float:
        p = self.params
        if p.drop_schedule == "constant":
            return p.drop_fraction
        return cosine_fraction(p.drop_fraction, t, self.stop_update)

    def grow_selection(self, layer: SparseLayer, eligible: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def update_masks(self, agent: Agent, role: str, t: int) -> None:
        frac = self.drop_fraction(t)
        self.last_drop_fraction[role] = frac
        optimizer = agent.optimizers[role]
        for layer in self.topology.sparse_layers(role):
            k = int(self.n_active[layer.key] * frac)
            if k == 0:
                continue
            mask = layer.mask
            removed = ops.prune_magnitude(layer.weight, mask, k)
            # Every position not kept may grow, so exactly k grow: the density never moves.
            grown = self.grow_selection(layer, ~mask | removed, k)
            new = grown & ~mask
            ops.init_grown_(layer.weight, new, "zero")
            layer.set_mask((mask & ~removed) | grown)
            ops.reset_adam_state_(optimizer, layer.weight, new)
            self.dropped_since_log[role] += k

    def log_metrics(self, agent: Agent, replay: Replay, step: int) -> dict[str, float]:
        out = super().log_metrics(agent, replay, step)
        for role in self.topology.roles:
            out[f"topology.drop_fraction.{role}"] = self.last_drop_fraction[role]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_drop_fraction": dict(self.last_drop_fraction)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last_drop_fraction = dict(state["last_drop_fraction"])


class SET(DynamicSparse):
    """`set`: magnitude drop, uniformly random regrowth (Mocanu et al. 2018)."""

    name: ClassVar[str] = "set"

    def grow_selection(self, layer: SparseLayer, eligible: torch.Tensor, k: int) -> torch.Tensor:
        return ops.grow_random(eligible, k, self.generator)


class RigL(DynamicSparse):
    """`rigl`: magnitude drop, regrowth by the largest |dense gradient| (Evci et al. 2020)."""

    name: ClassVar[str] = "rigl"

    def grow_selection(self, layer: SparseLayer, eligible: torch.Tensor, k: int) -> torch.Tensor:
        grad = layer.weight.grad
        if grad is None:
            raise RuntimeError(f"rigl: {layer.key} has no gradient at its mask update")
        return ops.grow_gradient(grad, eligible, k)


class GMP(SparseTraining):
    """`gmp`: gradual magnitude pruning of a dense network (Zhu & Gupta 2018) on the cubic schedule."""

    name: ClassVar[str] = "gmp"
    Params: ClassVar[type[GMPParams]] = GMPParams
    params: GMPParams
    smoke_params: ClassVar[dict[str, Any]] = {"delta": 50}

    @property
    def begin_update(self) -> int:
        return int(self.params.begin_fraction * self.total_updates)

    @property
    def end_update(self) -> int:
        return int(self.params.end_fraction * self.total_updates)

    def event_period(self) -> int | None:
        return self.params.delta

    def schedule(self) -> list[int]:
        points = list(range(self.begin_update, self.end_update + 1, self.params.delta))
        if points[-1] != self.end_update:
            points.append(self.end_update)
        return points

    def build_role(self, role: str) -> None:
        # Dense start: only the final per-layer sparsities are fixed here; masks appear at the first prune.
        p, topo = self.params, self.topology
        shapes = budget_shapes(topo.nets[role], topo.layers[role], count_norms=False)
        self.layer_sparsity[role] = layer_sparsities(p.distribution, shapes, p.sparsity)

    def scheduled_sparsity(self, role: str, name: str, t: int) -> float:
        p = self.params
        final = self.layer_sparsity[role][name]
        return polynomial_sparsity(
            min(p.initial_sparsity, final), final, t, self.begin_update, self.end_update, p.power
        )

    def target_active(self, layer: SparseLayer, t: int) -> int:
        """Active entries layer `layer` keeps at position t: N − ⌊s(t)·N⌋."""
        return layer.numel - int(self.scheduled_sparsity(layer.role, layer.name, t) * layer.numel)

    @torch.no_grad()
    def update_masks(self, agent: Agent, role: str, t: int) -> None:
        for layer in self.topology.layers[role]:
            if self.layer_sparsity[role][layer.name] <= 0.0:
                continue
            k = self.n_active[layer.key] - self.target_active(layer, t)
            if k <= 0:
                continue
            mask = layer.mask if layer.mask is not None else torch.ones_like(layer.weight, dtype=torch.bool)
            removed = ops.prune_magnitude(layer.weight, mask, k)
            layer.set_mask(mask & ~removed)
            self.n_active[layer.key] -= k
            self.dropped_since_log[role] += k
