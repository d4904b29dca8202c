"""Neuroplastic Expansion (Liu, Obando-Ceron, Courville, Pan, ICLR 2025) as a method plug-in.

NE starts from a sparse network (ERK at `init_sparsity`) and composes three components, one file each, each
configured by its own sub-model of the params, passed to it as it is:
- `growth:`  (`growth.GrowthParams`)  elastic topology growth by |dense gradient| every Δ updates, up to a
             target sparsity;
- `pruning:` (`dormant.PruningParams`) dormant-neuron pruning inside each growth update (≤ ω·k_grow per layer);
- `review:`  (`review.ReviewParams`)   experience review: sample from the oldest part of the buffer when a
             trigger fires.
The top level holds what the three share: which networks are sparse (`nets`, `actor`) and their initial
topology. A config overrides any key at any level, e.g. `{name: ne, growth: {delta: 1000}, review: {every: 50}}`.

Presets (registered names; each is NE with other defaults, at any level):
- `ne`       paper-faithful reading (docs/deviations.md, section NE, gives each default and why);
- `ne_code`  the official code's effective behaviour (the README command run through `train.py`):
             uniform fraction 0.008, Δ=100, growth space s₀·N − n fixed at the first update (negative for a
             nearly dense layer, as in the code), ⌊0.4·k_grow⌋ smallest-|w| pruning whose entries may regrow at
             once, zero-init, stale Adam moments, the Adam `step` reset at each growth update, skipped optimizer
             step, static 80%-ERK actor, magnitude mask init, RigL churn after 25% sparsity, no experience review;
- ablations of `ne`: `ne_no_growth`, `ne_no_pruning`, `ne_no_review`, `ne_growth_only`, `ne_static_actor`;
- `ne_static`: NE's initial network with its topology frozen (growth, pruning and review off): the static sparse
             baseline of Fig. 2, which differs from the growing variants in nothing but growth.

Hooks used: `on_build` (masks), `before_update` (advance the growth clocks, sync the mask copies, announce a due
topology update), `before_optimizer_step` (the due topology update, which may veto that step),
`after_optimizer_step` (re-apply masks), `after_target_update` (targets ← targets ⊙ online masks),
`on_sample` (review), `on_update` (keep the minibatch for the next dormancy check), `log_metrics`.
LayerNorm weights, biases and non-MLP modules are never masked, so NE composes with `layernorm` and others.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, create_model, model_validator
from pydantic_core import PydanticUndefined

from neuroplastic.methods._common import Nets, select_nets
from neuroplastic.methods.base import EVENT, Method, Params, RunContext, updates_in_run
from neuroplastic.methods.dormant import DormantPruning, PruningParams
from neuroplastic.methods.growth import GrowthParams, NetworkGrowth
from neuroplastic.methods.review import ExperienceReview, ReviewParams
from neuroplastic.replay import Batch
from neuroplastic.topology.masks import Topology

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Replay

# Flat keys of the params before they were nested, and where each lives now (a flat key is an error that says so).
MOVED_KEYS = {
    "roles": "nets",
    **{k: f"growth.{k}" for k in ("delta", "schedule", "uniform_fraction", "zeta", "t_end", "clock")},
    **{k: f"growth.{k}" for k in ("target_sparsity", "density_measure", "regrow_pruned", "after_target")},
    **{k: f"growth.{k}" for k in ("churn_zeta", "moments", "adam_step_reset", "skip_step")},
    "growth_space": "growth.space",
    "growth_score": "growth.score",
    "grown_init": "growth.init",
    "prune_mode": "pruning.mode",
    "omega": "pruning.omega",
    "prune_tau": "pruning.tau",
    "prune_connections": "pruning.connections",
    "review_mode": "review.mode",
    "review_net": "review.net",
    "review_every": "review.every",
    "review_fraction": "review.fraction",
    "review_prob": "review.prob",
    "review_tau": "review.tau",
    "review_window": "review.window",
    "review_eps_start": "review.eps_start",
    "review_eps_end": "review.eps_end",
    "review_eps_decay": "review.eps_decay",
    "review_when": "review.when",
    "review_awaken": "review.awaken",
    "review_tamp": "review.tamp",
    "review_batch": "review.batch",
}


class NEParams(Params):
    """Defaults are the paper-faithful `ne` preset; the other presets change defaults (`preset_params`)."""

    # --- which networks, and their initial topology ---
    nets: Nets = Field("both", description="Networks (roles of agent.nets) that are sparse; their MaskedLinear layers.")
    actor: Literal["growing", "static", "dense"] = Field(
        "growing", description="The `actor` network: grows like the critic, keeps its initial sparse mask, or is dense."
    )
    init_sparsity: float = Field(0.8, ge=0.0, lt=1.0, description="Global sparsity s₀ of each sparse network.")
    distribution: Literal["erk", "uniform"] = Field("erk", description="Layer-wise sparsity at s₀.")
    mask_init: Literal["random", "magnitude"] = Field(
        "random", description="Initial mask: random ER subset, or the top-|w| entries of the init (code)."
    )
    dense_first_last: bool = Field(True, description="Keep every MLP's first and last layer dense (RLx2, paper).")
    count_norm_weights: bool = Field(
        True, description="LayerNorm weights count (as dense) in the ERK budget, as in the code (`NE/utils.py:23-55`)."
    )
    mask_gradients: bool = Field(
        False,
        description="Mask gradients before each optimizer step (code's hook): inactive entries' Adam moments decay "
        "instead of following the dense gradient. Only matters with growth.moments=keep.",
    )
    # --- the three components ---
    growth: GrowthParams = Field(default_factory=GrowthParams, description="Elastic growth (growth.py).")
    pruning: PruningParams = Field(default_factory=PruningParams, description="Dormant pruning (dormant.py).")
    review: ReviewParams = Field(default_factory=ReviewParams, description="Experience review (review.py).")

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved = [f"`{k}` is now `{MOVED_KEYS[k]}`" for k in data if k in MOVED_KEYS]
            flags = [
                f"`{k}: {v}` is now `{k}: {{enabled: {str(v).lower()}}}`"
                for k, v in data.items()
                if k in ("growth", "pruning", "review") and isinstance(v, bool)
            ]
            if moved or flags:
                raise ValueError("NE params are nested: " + "; ".join(moved + flags))
        return data

    @model_validator(mode="after")
    def _consistent(self) -> NEParams:
        if self.growth.target_sparsity > self.init_sparsity:
            raise ValueError(
                f"growth.target_sparsity {self.growth.target_sparsity} > init_sparsity {self.init_sparsity}"
            )
        return self


def preset_params(name: str, base: type[BaseModel], **defaults: Any) -> type[BaseModel]:
    """A subclass of `base` whose fields in `defaults` get new defaults (types, bounds and docs kept). A mapping
    given for a sub-model field (`growth={...}`) changes that sub-model's defaults, so a config that overrides
    one key of `growth:` keeps the preset's other growth defaults."""
    fields = {}
    for key, value in defaults.items():
        if key not in base.model_fields:
            raise KeyError(f"{base.__name__} has no field {key!r}")
        info = copy.copy(base.model_fields[key])
        annotation = base.model_fields[key].annotation
        if isinstance(value, dict):
            annotation = preset_params(f"{name}_{key}", annotation, **value)
            info.default, info.default_factory = PydanticUndefined, annotation
        else:
            info.default, info.default_factory = value, None
        fields[key] = (annotation, info)
    return create_model(name, __base__=base, **fields)


# `ne_code`: the official code's effective defaults (`NE/STL_Scheduler.py`, `stl/train.py`; see docs/deviations.md).
NECodeParams = preset_params(
    "NECodeParams",
    NEParams,
    actor="static",
    mask_init="magnitude",
    dense_first_last=False,
    mask_gradients=True,
    growth={
        "delta": 100,
        "schedule": "uniform",
        "zeta": 0.5,
        "clock": "network",
        "target_sparsity": 0.25,
        "space": "code",
        "negative_space": "code",
        "density_measure": "all_weights",
        "regrow_pruned": True,
        "after_target": "churn",
        "moments": "keep",
        "adam_step_reset": True,
    },
    pruning={"mode": "code"},
    review={"enabled": False, "mode": "code", "every": 100},
)


class NE(Method):
    name: ClassVar[str] = "ne"
    Params: ClassVar[type[NEParams]] = NEParams
    # 500 updates in the smoke tier: 10 topology updates and several review measurements.
    smoke_params: ClassVar[dict[str, Any]] = {"growth": {"delta": 50}, "review": {"every": 50}}
    params: NEParams

    def __init__(self, params: NEParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        seeds = np.random.SeedSequence([ctx.seed, ctx.method_index, 0x4E45])
        topo_seed, review_seed = seeds.spawn(2)
        self.generator = torch.Generator(device=ctx.device)
        self.generator.manual_seed(int(topo_seed.generate_state(1)[0]))
        self.review_seed = review_seed
        self.t_end = 1  # set at build: `growth.t_end` or the run's number of updates
        self.topology: Topology | None = None
        self.growth: dict[str, NetworkGrowth] = {}
        self.pruner = DormantPruning(params.pruning)
        self.review: ExperienceReview | None = None
        self.last_batch: Batch | None = None
        self._dormant_cache: tuple | None = None
        self.layer_sparsity: dict[str, dict[str, float]] = {}
        # Networks whose topology update falls in the current update (set by `before_update`, the update's
        # host side); the update hooks read it, so on every other update they are tensor work only.
        self.due_roles: tuple[str, ...] = ()

    # --- build ----------------------------------------------------------------------------------
    def sparse_roles(self, agent: Agent) -> list[str]:
        roles = select_nets(self.params.nets, agent, self.name)
        return [r for r in roles if not (r == "actor" and self.params.actor == "dense")]

    def growing_roles(self) -> list[str]:
        p = self.params
        if not (p.growth.enabled or p.pruning.enabled):
            return []  # no component can change the topology: no topology updates at all
        return [r for r in self.topology.roles if not (r == "actor" and p.actor == "static")]

    def on_build(self, agent: Agent) -> None:
        p = self.params
        self.t_end = p.growth.t_end or updates_in_run(self.ctx, agent)
        self.topology = topo = Topology(agent.nets, self.sparse_roles(agent))
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
        for role in self.growing_roles():
            self.growth[role] = NetworkGrowth(
                role, agent.nets[role], topo.layers[role], p.growth, init_sparsity=p.init_sparsity, t_end=self.t_end
            )
        if p.review.enabled and p.review.net not in agent.nets:
            raise ValueError(f"method {self.name}: review.net {p.review.net!r} is not a network of {agent.name!r}")
        self.review = ExperienceReview(
            p.review,
            t_end=self.t_end,
            batch_size=int(getattr(agent.params, "batch_size", 256)),
            seed_sequence=self.review_seed,
            device=self.ctx.device,
        )

    # --- update path ----------------------------------------------------------------------------
    def on_sample(self, agent: Agent, replay: Replay, step: int) -> Batch | None:
        return self.review.sample(agent, replay, agent.updates + 1)

    def event_period(self) -> int | None:
        return self.params.growth.delta if self.growth else None

    def force_next_event(self, agent: Agent) -> None:
        for g in self.growth.values():
            g.force_due()

    def before_update(self, agent: Agent, update: int, roles: tuple[str, ...]) -> Hashable:
        # Each growing network's clock advances once per optimizer call; a due topology update is an event.
        self.due_roles = tuple(r for r in roles if r in self.growth and self.growth[r].tick(update))
        self.topology.sync_(agent.targets)
        return EVENT if self.due_roles else ()

    def before_optimizer_step(self, agent: Agent, net: str, update: int) -> bool:
        if net not in self.due_roles:
            if self.params.mask_gradients and net in self.topology.layers:
                self.topology.mask_grads_(net)
            return True
        growth = self.growth[net]
        dormant = None
        if self.pruner.needs_activations and growth.phase == "growing" and self.last_batch is not None:
            # One forward pass serves every network updated within the same agent update (the actor's
            # weights do not change between the critic's topology update and its own).
            key = (id(self.last_batch), agent.updates)
            if self._dormant_cache is None or self._dormant_cache[0] != key:
                self._dormant_cache = (key, self.pruner.dormant_features(agent, list(self.growth), self.last_batch))
            dormant = self._dormant_cache[1]
        changed = growth.update(update, agent.optimizers[net], self.pruner, dormant, self.generator)
        self.topology.sync_(agent.targets, [net])
        take = not (changed and growth.params.skip_step)
        if take and self.params.mask_gradients:
            self.topology.mask_grads_(net)
        return take

    def after_optimizer_step(self, agent: Agent, net: str, update: int) -> None:
        if self.topology is not None and net in self.topology.layers:
            self.topology.apply_(net)

    def after_target_update(self, agent: Agent) -> None:
        for role in self.topology.roles:
            self.topology.mask_targets_(role)

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
                out[f"ne.growth_fraction.{role}"] = g.fraction(g.position) if g.phase == "growing" else 0.0
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
        for role, g in self.growth.items():
            g.load_state_dict(state["growth"][role])
        self.review.load_state_dict(state["review"])
        self.generator.set_state(state["generator"])
        lb = state["last_batch"]
        self.last_batch = None if lb is None else Batch(*(t.to(self.ctx.device) for t in lb))


def _preset(name: str, doc: str, **defaults: Any) -> type[NE]:
    """A registered NE variant: the same method with other parameter defaults."""
    class_name = "".join(part.title() for part in name.split("_"))
    params_cls = preset_params(f"{class_name}Params", NEParams, **defaults)
    return type(class_name, (NE,), {"name": name, "Params": params_cls, "__doc__": doc})


class NECode(NE):
    """`ne_code`: the official code's effective behaviour (see module docstring)."""

    name: ClassVar[str] = "ne_code"
    Params: ClassVar[type[NEParams]] = NECodeParams


NE_ABLATIONS: dict[str, type[NE]] = {
    "ne_no_growth": _preset("ne_no_growth", "NE without elastic growth.", growth={"enabled": False}),
    "ne_no_pruning": _preset("ne_no_pruning", "NE without dormant-neuron pruning.", pruning={"enabled": False}),
    "ne_no_review": _preset("ne_no_review", "NE without experience review.", review={"enabled": False}),
    "ne_growth_only": _preset(
        "ne_growth_only",
        "NE with growth only (no pruning, no review).",
        pruning={"enabled": False},
        review={"enabled": False},
    ),
    "ne_static_actor": _preset("ne_static_actor", "NE with a static sparse actor.", actor="static"),
    "ne_static": _preset(
        "ne_static",
        "NE's initial sparse network with its topology frozen (the static sparse baseline of Fig. 2).",
        growth={"enabled": False},
        pruning={"enabled": False},
        review={"enabled": False},
    ),
}
