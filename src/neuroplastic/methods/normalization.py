"""Normalization baselines: LayerNorm, and NaP — Normalize-and-Project (Lyle et al., NeurIPS 2024).

`layernorm`: Linear → LayerNorm(d, eps 1e-5) → activation on every hidden layer of the actor and of both
Q-heads (output layers un-normalized). Switches: `nets: critic` (critic-only) and `only_layer: k` (LN on hidden
layer k only, 0-based; `only_layer: 2` on the 3-hidden-layer NE critic is the NE repository's placement, and
`only_layer: -1` is "the last hidden layer" of any depth).

`nap`: (1) LayerNorm before every nonlinearity (no affine parameters by default); (2) after every optimizer
step, every weight matrix followed by a normalization is projected back onto the sphere of its initial
Frobenius norm, W ← ρ·W/‖W‖_F, with ρ = ‖W‖_F measured before the first update; output layers, biases and the
optimizer moments are untouched; (3) an explicit learning-rate schedule: the lr of every MLP network's
optimizer decays linearly from its initial value to `lr_end_factor`× that value over the run's gradient updates
(`updates_in_run`: (steps − start_steps) × replay ratio). The initial lr is kept in the param group as
`initial_lr` (checkpointed with the optimizer), so a resumed run continues the same schedule. Targets follow
by Polyak averaging and are not projected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field
from torch import nn

from neuroplastic.methods._common import Nets, mlp_roles, select_nets, selects
from neuroplastic.methods.base import Method, Params, updates_in_run
from neuroplastic.nets import MLPSpec, mlps

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent


def _with_layernorm(spec: MLPSpec, layers: frozenset[int], affine: bool) -> MLPSpec:
    return spec.with_(layernorm=spec.layernorm | layers, layernorm_affine=affine)


class LayerNormParams(Params):
    nets: Nets = Field("both", description="`critic` = critic-only LN.")
    only_layer: int | None = Field(
        None, description="LN on this hidden layer only (0-based; negative counts from the last); None = every one."
    )
    affine: bool = Field(True, description="Elementwise gain and offset.")


class LayerNormMethod(Method):
    name = "layernorm"
    Params = LayerNormParams
    params: LayerNormParams

    def net_spec(self, role: str, spec: MLPSpec) -> MLPSpec:
        if not selects(self.params.nets, role):
            return spec
        n = len(spec.hidden)
        k = self.params.only_layer
        if k is None:
            layers = frozenset(range(n))
        elif -n <= k < n:
            layers = frozenset({k % n})
        else:
            raise ValueError(f"layernorm.only_layer={k} is out of range for the {n} hidden layers of {role}")
        return _with_layernorm(spec, layers, self.params.affine)

    def on_build(self, agent: Agent) -> None:
        select_nets(self.params.nets, agent, self.name)


class NaPParams(Params):
    nets: Nets = Field("both", description="Networks that get normalization and projection.")
    affine: bool = Field(False, description="LayerNorm gain/offset (NaP TD3 port: none).")
    lr_schedule: Literal["linear", "constant"] = Field("linear", description="Explicit learning-rate schedule.")
    lr_end_factor: float = Field(0.1, gt=0, le=1, description="Final lr as a fraction of the initial lr (3e-4→3e-5).")


class NaP(Method):
    name = "nap"
    Params = NaPParams
    params: NaPParams

    def __init__(self, params: NaPParams, ctx) -> None:
        super().__init__(params, ctx)
        # role → [(weight, ρ)] for every weight matrix followed by a LayerNorm.
        self.projection: dict[str, list[tuple[nn.Parameter, torch.Tensor]]] | None = None
        self._norms: list[torch.Tensor] | None = None
        self.total_updates = 1

    def on_build(self, agent: Agent) -> None:
        select_nets(self.params.nets, agent, self.name)
        self.total_updates = updates_in_run(self.ctx, agent)

    def net_spec(self, role: str, spec: MLPSpec) -> MLPSpec:
        if not selects(self.params.nets, role):
            return spec
        return _with_layernorm(spec, frozenset(range(len(spec.hidden))), self.params.affine)

    def _projected(self, agent: Agent) -> dict[str, list[nn.Parameter]]:
        out = {}
        for role in mlp_roles(agent, self.params.nets):
            weights = []
            for _, mlp in mlps(agent.nets[role]):
                for layer, norm in zip(mlp.layers[:-1], mlp.norms, strict=True):
                    if isinstance(norm, nn.LayerNorm):
                        weights.append(layer.weight)
            out[role] = weights
        return out

    @torch.no_grad()
    def on_step(self, agent: Agent, step: int) -> None:
        if self.projection is None:
            # First call (step 1, before any update, after every method's on_build): record ρ.
            norms = self._norms
            projected = self._projected(agent)
            if norms is None:
                norms = [w.norm().clone() for ws in projected.values() for w in ws]
            it = iter(norms)
            self.projection = {role: [(w, next(it)) for w in ws] for role, ws in projected.items()}
        if self.params.lr_schedule == "linear":
            progress = min(1.0, agent.updates / self.total_updates)
            factor = 1.0 - (1.0 - self.params.lr_end_factor) * progress
            for role in mlp_roles(agent, self.params.nets):
                for group in agent.optimizers[role].param_groups:
                    group.setdefault("initial_lr", group["lr"])
                    group["lr"] = group["initial_lr"] * factor

    @torch.no_grad()
    def after_optimizer_step(self, agent: Agent, net: str, update: int) -> None:
        if self.projection is None or net not in self.projection:
            return
        for weight, rho in self.projection[net]:
            weight.mul_(rho / weight.norm())

    def state_dict(self) -> dict[str, Any]:
        if self.projection is None:
            return {"norms": None}
        return {"norms": [rho.cpu() for pairs in self.projection.values() for _, rho in pairs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.projection = None
        norms = state["norms"]
        self._norms = None if norms is None else [r.to(self.ctx.device) for r in norms]
