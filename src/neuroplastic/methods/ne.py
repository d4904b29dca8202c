"""Neuroplastic Expansion (Liu, Obando-Ceron, Courville, Pan, ICLR 2025) as a method plug-in.

NE starts from a sparse network (ERK at `init_sparsity`) and composes three components, one file each:
- `growth.py`  elastic topology growth by |dense gradient| every `delta` updates, up to `target_sparsity`;
- `dormant.py` dormant-neuron pruning inside each growth update (≤ ω·k_grow connections per layer);
- `review.py`  experience review: sample from the oldest part of the buffer when a trigger fires.

Presets (registered names; every param can still be overridden in the config):
- `ne`       paper-faithful reading (see docs/deviations.md, section NE, for each default and why);
- `ne_code`  the official code's effective behaviour (the README command run through `train.py`):
             uniform fraction 0.008, Δ=100, growth space s₀·N − n fixed at the first update, ⌊0.4·k_grow⌋
             smallest-|w| pruning whose entries may regrow at once, zero-init, stale Adam moments, the Adam
             `step` reset at each growth update, skipped optimizer step, static 80%-ERK actor, magnitude
             mask init, RigL churn after 25% sparsity, no experience review;
- ablations of `ne`: `ne_no_growth`, `ne_no_pruning`, `ne_no_review`, `ne_growth_only`, `ne_static_actor`.

Hooks used: `on_build` (masks), `before_optimizer_step` (topology updates, which may veto that step),
`after_optimizer_step` (re-apply masks), `after_target_update` (targets ← targets ⊙ online masks),
`on_sample` (review), `on_update` (keep the minibatch for the next dormancy check), `log_metrics`.
LayerNorm weights, biases and non-MLP modules are never masked, so NE composes with `layernorm` and others.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, create_model, model_validator

from neuroplastic import capture
from neuroplastic.methods.base import Method, Params, RunContext
from neuroplastic.methods.dormant import DormantPruning
from neuroplastic.methods.growth import GrowthSettings, NetworkGrowth
from neuroplastic.methods.review import ExperienceReview
from neuroplastic.topology.masks import Topology

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Batch, Replay


class NEParams(Params):
    """Defaults are the paper-faithful `ne` preset; `NECodeParams` overrides them for `ne_code`."""

    # --- which networks ---
    roles: list[str] = Field(
        default_factory=lambda: ["actor", "critic"],
        description="Networks (keys of agent.nets) that are sparse; only their MaskedLinear layers get masks.",
    )
    actor: Literal["growing", "static", "dense"] = Field(
        "growing", description="The `actor` role: grows like the critic, keeps its initial sparse mask, or is dense."
    )
    # --- initial topology ---
    init_sparsity: float = Field(0.8, ge=0.0, lt=1.0, description="Global sparsity s₀ of each sparse network.")
    distribution: Literal["erk", "uniform"] = Field("erk", description="Layer-wise sparsity at s₀.")
    mask_init: Literal["random", "magnitude"] = Field(
        "random", description="Initial mask: random ER subset, or the top-|w| entries of the init (code)."
    )
    dense_first_last: bool = Field(True, description="Keep every MLP's first and last layer dense (RLx2, paper).")
    count_norm_weights: bool = Field(
        True, description="LayerNorm weights count (as dense) in the ERK budget, as in the code (spec §1.2)."
    )
    # --- growth ---
    growth: bool = Field(True, description="Elastic growth on/off (ablation). Off: k_grow still caps pruning.")
    delta: int = Field(10_000, gt=0, description="Updates between topology updates (Δ).")
    schedule: Literal["uniform", "cosine"] = Field("cosine", description="Growth fraction schedule r(t).")
    uniform_fraction: float = Field(0.008, gt=0, le=1, description="r(t) of the `uniform` schedule (code: 0.008).")
    zeta: float | None = Field(
        None, gt=0, le=1, description="Amplitude ζ of `cosine` r(t)=ζ/2(1+cos(πt/T_end)); None: 2Δ/T_end (Σr ≈ 1)."
    )
    t_end: int | None = Field(None, gt=0, description="T_end in updates; None: steps − start_steps.")
    clock: Literal["network", "agent"] = Field(
        "agent", description="Schedule position: each network's own optimizer steps (code) or agent updates."
    )
    target_sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="Growth stops at this global sparsity.")
    growth_space: Literal["code", "target"] = Field(
        "target", description="G_l = max(0, s₀·N − n₀) (code) or max(0, (1 − target)·N − n₀)."
    )
    density_measure: Literal["linear", "all_weights"] = Field(
        "linear", description="Density for the stop test: linear weights, or all weight tensors incl. LayerNorm."
    )
    growth_score: Literal["gradient", "random"] = Field("gradient", description="Grow by |dense grad| or at random.")
    grown_init: Literal["zero", "lecun"] = Field("zero", description="Value of newly grown weights.")
    regrow_pruned: bool = Field(False, description="Entries pruned in an update may regrow in the same update.")
    after_target: Literal["freeze", "churn"] = Field(
        "freeze", description="After the target: fixed topology, or the code's RigL churn (cosine from churn_zeta)."
    )
    churn_zeta: float = Field(0.2, gt=0, le=1, description="Initial churn fraction after the target (code: 0.2).")
    moments: Literal["reset", "keep"] = Field("reset", description="Adam moments of grown/pruned entries.")
    adam_step_reset: bool = Field(False, description="Reset Adam's `step` of sparse weights at each growth update.")
    skip_step: bool = Field(True, description="Skip the optimizer step of a topology-update iteration (code).")
    mask_gradients: bool = Field(
        False,
        description="Mask gradients before each optimizer step (code's hook): inactive entries' Adam moments decay "
        "instead of following the dense gradient. Only matters with moments=keep.",
    )
    # --- pruning ---
    pruning: bool = Field(True, description="Dormant-neuron pruning on/off (ablation).")
    prune_mode: Literal["paper", "code"] = Field("paper", description="Dormant-unit connections, or smallest |w|.")
    omega: float = Field(0.4, ge=0.0, le=1.0, description="Prune cap ω·k_grow per layer (code constant 0.4).")
    prune_tau: float = Field(0.0, ge=0.0, description="τ of the dormancy score for pruning (0: fully inactive).")
    prune_connections: Literal["both", "incoming", "outgoing"] = Field(
        "both", description="Which connections of a dormant unit are candidates."
    )
    # --- experience review ---
    review: bool = Field(True, description="Experience review on/off (ablation).")
    review_mode: Literal["paper", "code", "off"] = Field("paper", description="Review trigger.")
    review_net: str = Field("critic", description="Network whose dormant ratio / FAU drives the trigger.")
    review_every: int = Field(1000, gt=0, description="Updates between trigger measurements.")
    review_fraction: float = Field(0.3, gt=0.0, le=1.0, description="Oldest fraction of the buffer window.")
    review_prob: float = Field(0.5, ge=0.0, le=1.0, description="Paper mode: P(review) per update while triggered.")
    review_tau: float = Field(0.1, ge=0.0, description="Paper mode: τ of the tracked dormant ratio.")
    review_window: int = Field(10, gt=0, description="Paper mode: measurements averaged into the fluctuation ∇f.")
    review_eps_start: float = Field(0.02, ge=0.0, description="Paper mode: threshold ε at t=0.")
    review_eps_end: float = Field(0.002, ge=0.0, description="Paper mode: ε plateau.")
    review_eps_decay: float = Field(
        0.5, gt=0.0, description="Paper mode: ε reaches its plateau at this fraction of T_end."
    )
    review_when: Literal["below", "above"] = Field(
        "below", description="Paper mode: review while ∇f < ε (issue) or while ∇f > ε (reviewers' Figure 5 reading)."
    )
    review_awaken: float = Field(0.4, ge=0.0, le=1.0, description="Code mode: FAU threshold (awaken).")
    review_tamp: float = Field(0.9, gt=0.0, description="Code mode: gate temperature (Tamp).")
    review_batch: int = Field(256, gt=0, description="Batch size of trigger measurements.")

    @model_validator(mode="after")
    def _consistent(self) -> NEParams:
        if self.target_sparsity > self.init_sparsity:
            raise ValueError(f"target_sparsity {self.target_sparsity} > init_sparsity {self.init_sparsity}")
        if len(set(self.roles)) != len(self.roles) or not self.roles:
            raise ValueError(f"roles must be distinct and non-empty, got {self.roles}")
        return self


def params_with_defaults(name: str, base: type[NEParams], **defaults: Any) -> type[NEParams]:
    """A subclass of `base` whose fields in `defaults` get new defaults (types, bounds and docs kept)."""
    fields = {}
    for key, value in defaults.items():
        info = copy.copy(base.model_fields[key])
        info.default, info.default_factory = value, None
        fields[key] = (base.model_fields[key].annotation, info)
    return create_model(name, __base__=base, **fields)


# `ne_code`: the official code's effective defaults (spec §2.2, §8; docs/deviations.md explains each).
NECodeParams = params_with_defaults(
    "NECodeParams",
    NEParams,
    actor="static",
    mask_init="magnitude",
    dense_first_last=False,
    delta=100,
    schedule="uniform",
    zeta=0.5,
    clock="network",
    target_sparsity=0.25,
    growth_space="code",
    density_measure="all_weights",
    regrow_pruned=True,
    after_target="churn",
    moments="keep",
    adam_step_reset=True,
    mask_gradients=True,
    prune_mode="code",
    review_mode="off",
    review_every=100,
)


class NE(Method):
    name: ClassVar[str] = "ne"
    Params: ClassVar[type[NEParams]] = NEParams
    # 500 updates in the smoke tier: 10 topology updates and several review measurements.
    smoke_params: ClassVar[dict[str, Any]] = {"delta": 50, "review_every": 50}
    params: NEParams

    def __init__(self, params: NEParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        p = params
        self.t_end = p.t_end or max(1, ctx.steps - ctx.start_steps)
        seeds = np.random.SeedSequence([ctx.seed, ctx.method_index, 0x4E45])
        topo_seed, review_seed = seeds.spawn(2)
        self.generator = torch.Generator(device=ctx.device)
        self.generator.manual_seed(int(topo_seed.generate_state(1)[0]))
        self.review_seed = review_seed
        self.topology: Topology | None = None
        self.growth: dict[str, NetworkGrowth] = {}
        self.pruner = DormantPruning(p.prune_mode, p.omega, p.prune_tau, p.prune_connections, enabled=p.pruning)
        self.review: ExperienceReview | None = None
        self.last_batch: Batch | None = None
        self._dormant_cache: tuple | None = None
        self.layer_sparsity: dict[str, dict[str, float]] = {}

    # --- build ----------------------------------------------------------------------------------
    def sparse_roles(self) -> list[str]:
        return [r for r in self.params.roles if not (r == "actor" and self.params.actor == "dense")]

    def growing_roles(self) -> list[str]:
        return [r for r in self.sparse_roles() if not (r == "actor" and self.params.actor == "static")]

    def growth_settings(self) -> GrowthSettings:
        p = self.params
        return GrowthSettings(
            delta=p.delta,
            t_end=self.t_end,
            schedule=p.schedule,
            uniform_fraction=p.uniform_fraction,
            zeta=p.zeta if p.zeta is not None else min(1.0, 2.0 * p.delta / self.t_end),
            clock=p.clock,
            init_sparsity=p.init_sparsity,
            target_sparsity=p.target_sparsity,
            growth_space=p.growth_space,
            density_measure=p.density_measure,
            growth=p.growth,
            growth_score=p.growth_score,
            grown_init=p.grown_init,
            regrow_pruned=p.regrow_pruned,
            after_target=p.after_target,
            churn_zeta=p.churn_zeta,
            moments=p.moments,
            adam_step_reset=p.adam_step_reset,
        )

    def on_build(self, agent: Agent) -> None:
        p = self.params
        missing = [r for r in p.roles if r not in agent.nets]
        if missing:
            raise ValueError(f"method {self.name}: roles {missing} are not networks of agent {agent.name!r}")
        self.topology = topo = Topology(agent.nets, self.sparse_roles())
        for role in topo.roles:
            self.layer_sparsity[role] = topo.init_masks(
                role,
                p.init_sparsity,
                distribution=p.distribution,
                init=p.mask_init,
                dense_first_last=p.dense_first_last,
                count_norms=p.count_norm_weights,
                generator=self.generator,
            )
        settings = self.growth_settings()
        for role in self.growing_roles():
            self.growth[role] = NetworkGrowth(role, agent.nets[role], topo.layers[role], settings)
        review_on = p.review and p.review_mode != "off"
        if review_on and p.review_net not in agent.nets:
            raise ValueError(f"method {self.name}: review_net {p.review_net!r} is not a network of {agent.name!r}")
        self.review = ExperienceReview(
            p.review_mode if review_on else "off",
            net=p.review_net,
            every=p.review_every,
            early_fraction=p.review_fraction,
            t_end=self.t_end,
            batch_size=int(getattr(agent.params, "batch_size", 256)),
            measure_batch=p.review_batch,
            seed_sequence=self.review_seed,
            device=self.ctx.device,
            prob=p.review_prob,
            tau=p.review_tau,
            window=p.review_window,
            eps_start=p.review_eps_start,
            eps_end=p.review_eps_end,
            eps_decay=p.review_eps_decay,
            awaken=p.review_awaken,
            tamp=p.review_tamp,
            when=p.review_when,
        )

    # --- update path ----------------------------------------------------------------------------
    def on_sample(self, agent: Agent, replay: Replay, step: int) -> Batch | None:
        return self.review.sample(agent, replay, agent.updates + 1)

    def update_event(self, agent: Agent, update: int, roles: tuple[str, ...]) -> bool:
        return any(self.growth[r].due(update) for r in roles if r in self.growth)

    def before_captured_update(self, agent: Agent, update: int, roles: tuple[str, ...]) -> None:
        for r in roles:
            if r in self.growth:
                self.growth[r].tick(update)
        for role in self.topology.roles:
            self.topology.refresh_(role)

    def before_optimizer_step(self, agent: Agent, net: str, update: int) -> bool:
        growth = self.growth.get(net)
        if growth is None or capture.tracing() or not growth.tick(update):
            if self.params.mask_gradients and net in self.topology.layers:
                self.topology.mask_grads_(net)
            return True
        dormant = None
        if self.pruner.needs_activations and growth.phase == "growing" and self.last_batch is not None:
            # One forward pass serves every network updated within the same agent update (the actor's
            # weights do not change between the critic's topology update and its own).
            key = (id(self.last_batch), agent.updates)
            if self._dormant_cache is None or self._dormant_cache[0] != key:
                self._dormant_cache = (key, self.pruner.dormant_features(agent, list(self.growth), self.last_batch))
            dormant = self._dormant_cache[1]
        changed = growth.update(update, agent.optimizers[net], self.pruner, dormant, self.generator)
        take = not (changed and self.params.skip_step)
        if take and self.params.mask_gradients:
            self.topology.mask_grads_(net)
        return take

    def after_optimizer_step(self, agent: Agent, net: str, update: int) -> None:
        if self.topology is not None and net in self.topology.layers:
            self.topology.apply_(net)

    def after_target_update(self, agent: Agent) -> None:
        for role in self.topology.roles:
            self.topology.mask_targets_(agent.targets, role)

    def on_update(self, agent: Agent, batch: Batch, step: int) -> None:
        if self.pruner.needs_activations:
            self.last_batch = batch

    # --- logging --------------------------------------------------------------------------------
    def log_metrics(self, agent: Agent, replay: Replay, step: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, g in self.growth.items():
            out[f"topology.grown.{role}"] = float(g.grown_since_log)
            out[f"topology.pruned.{role}"] = float(g.pruned_since_log)
            out[f"topology.updates.{role}"] = float(g.topology_updates)
            out[f"ne.phase.{role}"] = float(("growing", "churn", "frozen").index(g.phase))
            if g.phase != "frozen":
                out[f"ne.growth_fraction.{role}"] = g.settings.fraction(g.position) if g.phase == "growing" else 0.0
            g.grown_since_log = g.pruned_since_log = 0
        out.update(self.review.log_metrics())
        return out

    # --- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        batch = None if self.last_batch is None else tuple(t.detach().cpu() for t in self.last_batch)
        return {
            "growth": {role: g.state_dict() for role, g in self.growth.items()},
            "review": self.review.state_dict(),
            "generator": self.generator.get_state(),
            "last_batch": batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from neuroplastic.replay import Batch

        for role, g in self.growth.items():
            g.load_state_dict(state["growth"][role])
        self.review.load_state_dict(state["review"])
        self.generator.set_state(state["generator"])
        lb = state["last_batch"]
        self.last_batch = None if lb is None else Batch(*(t.to(self.ctx.device) for t in lb))


def _preset(name: str, doc: str, **defaults: Any) -> type[NE]:
    """A registered NE variant: the same method with other parameter defaults."""
    class_name = "".join(part.title() for part in name.split("_"))
    params_cls = params_with_defaults(f"{class_name}Params", NEParams, **defaults)
    return type(class_name, (NE,), {"name": name, "Params": params_cls, "__doc__": doc})


class NECode(NE):
    """`ne_code`: the official code's effective behaviour (see module docstring)."""

    name: ClassVar[str] = "ne_code"
    Params: ClassVar[type[NEParams]] = NECodeParams


NE_ABLATIONS: dict[str, type[NE]] = {
    "ne_no_growth": _preset("ne_no_growth", "NE without elastic growth.", growth=False),
    "ne_no_pruning": _preset("ne_no_pruning", "NE without dormant-neuron pruning.", pruning=False),
    "ne_no_review": _preset("ne_no_review", "NE without experience review.", review=False),
    "ne_growth_only": _preset(
        "ne_growth_only", "NE with growth only (no pruning, no review).", pruning=False, review=False
    ),
    "ne_static_actor": _preset("ne_static_actor", "NE with a static sparse actor.", actor="static"),
}
