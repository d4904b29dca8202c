"""Plasticity Injection (Nikishin, Oh, Ostrovski, Lyle, Pascanu, Dabney, Barreto; NeurIPS 2023).

Every MLP of the selected networks is split into an encoder φ (its first `encoder_layers` hidden layers; 0 =
identity encoder, the head is the whole MLP) and a head h_θ (the remaining layers). At environment step t*:
  - θ is frozen (requires_grad off, removed from the optimizer);
  - a fresh head θ'_1 is drawn from the agent's own initializer under a seed of its own (global RNG untouched),
    and θ'_2 = θ'_1 is copied and frozen;
  - the MLP then computes h_θ(φ(x)) + (h_θ'_1(φ(x)) − h_θ'_2(φ(x))). The bracket is exactly 0 at t* (same
    weights, same arithmetic), so outputs are bit-for-bit unchanged, and the trainable parameter count is
    unchanged (θ out, θ'_1 in).
The target network gets the same three-term structure: its θ̄ part keeps tracking the (now frozen) θ by Polyak
averaging, its θ'_1 part starts as a copy of θ'_1 and tracks it, and its θ'_2 part equals θ'_2 (Polyak between
two equal frozen tensors is a no-op).

The optimizer of each injected network is rebuilt over the trainable parameters only (encoder + θ'_1), with
the same hyperparameters (including a learning rate another method may have scheduled). The encoder keeps its
Adam state (moments and step count): the paper reports that resetting optimizer state at injection hurts.
θ'_1 starts with empty Adam state, as a fresh parameter group would.

Before t* this method creates nothing and draws no random numbers, so the run is bit-identical to the plain
agent. After a resume, `prepare_restore` re-creates the structure before the agent's weights are loaded.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from neuroplastic.methods._common import Nets, fresh_net, get_mlp, seed_for, select_nets
from neuroplastic.methods.base import Method, Params
from neuroplastic.nets import MLP, mlps

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent


class InjectionParams(Params):
    at_step: int | None = Field(None, gt=0, description="Env step of the injection (overrides at_fraction).")
    at_fraction: float = Field(0.5, gt=0, lt=1, description="Injection step as a fraction of the run's env steps.")
    nets: Nets = Field("both", description="Networks that get an injected head.")
    encoder_layers: int = Field(1, ge=0, description="Hidden layers of each MLP that form the encoder φ.")


class InjectedMLP(nn.Module):
    """An MLP whose head has been injected: base head (frozen) + new head − frozen copy of the new head."""

    def __init__(self, base: MLP, fresh: MLP, encoder_layers: int) -> None:
        super().__init__()
        k = encoder_layers
        self.base = base
        self.spec = base.spec
        self.encoder_layers = k
        self.new_layers = copy.deepcopy(fresh.layers[k:])
        self.new_norms = copy.deepcopy(fresh.norms[k:])
        self.frozen_layers = copy.deepcopy(self.new_layers)
        self.frozen_norms = copy.deepcopy(self.new_norms)
        for module in (*base.layers[k:], *base.norms[k:], self.frozen_layers, self.frozen_norms):
            module.requires_grad_(False)
            for p in module.parameters():
                p.grad = None  # no optimizer clears it any more

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(self.encoder_layers):
            x = self.base.act(self.base.norms[i](self.base.layers[i](x)))
            out.append(x)
        return out

    def _head(self, layers: nn.ModuleList, norms: nn.ModuleList, z: torch.Tensor) -> tuple[torch.Tensor, list]:
        hidden = []
        for layer, norm in zip(layers[:-1], norms, strict=True):
            z = self.base.act(norm(layer(z)))
            hidden.append(z)
        return layers[-1](z), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self._encode(x)
        z = enc[-1] if enc else x
        k = self.encoder_layers
        old, _ = self._head(self.base.layers[k:], self.base.norms[k:], z)
        new, _ = self._head(self.new_layers, self.new_norms, z)
        frozen, _ = self._head(self.frozen_layers, self.frozen_norms, z)
        # The bracket is computed first so that it is exactly zero while θ'_1 = θ'_2.
        return old + (new - frozen)

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The trainable path: encoder layers, then the new head's hidden layers (same count as before)."""
        enc = self._encode(x)
        _, hidden = self._head(self.new_layers, self.new_norms, enc[-1] if enc else x)
        return enc + hidden


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(module.get_submodule(parent_name) if parent_name else module, attr, new)


# Methods that address weights by name/position of the built network; after t* those no longer line up.
WEIGHT_EDITORS = frozenset({"reset", "redo", "nap", "l2_init", "shrink_perturb"})


class PlasticityInjection(Method):
    name = "plasticity_injection"
    # Injection replaces MLPs by InjectedMLPs and rebuilds the optimizers.
    capture = "rebuild"
    smoke_params: ClassVar[dict[str, Any]] = {"at_step": 700}
    Params = InjectionParams
    params: InjectionParams

    def __init__(self, params: InjectionParams, ctx) -> None:
        super().__init__(params, ctx)
        self.injected = False
        self.at = params.at_step if params.at_step is not None else max(1, int(params.at_fraction * ctx.steps))

    def on_build(self, agent: Agent) -> None:
        clash = sorted({m.name for m in agent.methods if m.name in WEIGHT_EDITORS})
        if clash:
            raise ValueError(
                f"plasticity_injection cannot be combined with {clash}: they edit the networks by parameter name "
                "or by hidden layer and do not know the injected three-head structure"
            )
        k = self.params.encoder_layers
        for role in select_nets(self.params.nets, agent, self.name):
            for name, mlp in mlps(agent.nets[role]):
                if k > len(mlp.spec.hidden):
                    raise ValueError(
                        f"plasticity_injection.encoder_layers={k} exceeds the {len(mlp.spec.hidden)} hidden layers "
                        f"of {role}.{name}"
                    )

    def on_step(self, agent: Agent, step: int) -> None:
        if not self.injected and step == self.at:
            self.inject(agent)

    def inject(self, agent: Agent) -> None:
        k = self.params.encoder_layers
        for role in select_nets(self.params.nets, agent, self.name):
            online = agent.nets[role]
            fresh = fresh_net(agent, role, seed_for(self.ctx, "injection", role))
            if any(isinstance(m, InjectedMLP) for m in online.modules()):
                raise RuntimeError(f"plasticity_injection: {role} is already injected")
            wrapped = {}
            for name, mlp in mlps(online):
                wrapped[name] = InjectedMLP(mlp, get_mlp(fresh, name), k)
            for name, new in wrapped.items():
                _replace_or_root(agent.nets, role, name, new)
            if role in agent.targets:
                target = agent.targets[role]
                for name, tmlp in mlps(target):
                    online_mlp = wrapped[name]
                    twin = InjectedMLP(tmlp, get_mlp(fresh, name), k)
                    twin.new_layers.load_state_dict(online_mlp.new_layers.state_dict())
                    twin.new_norms.load_state_dict(online_mlp.new_norms.state_dict())
                    twin.requires_grad_(False)
                    _replace_or_root(agent.targets, role, name, twin)
            if role in agent.optimizers:
                agent.optimizers[role] = _rebuild_optimizer(agent.optimizers[role], agent.nets[role])
        self.injected = True

    def state_dict(self) -> dict[str, Any]:
        return {"injected": self.injected}

    def prepare_restore(self, agent: Agent, state: dict[str, Any]) -> None:
        if state["injected"] and not self.injected:
            self.inject(agent)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.injected = state["injected"]


def _replace_or_root(table: dict[str, nn.Module], role: str, name: str, new: nn.Module) -> None:
    if name:
        _replace(table[role], name, new)
    else:
        table[role] = new


def _rebuild_optimizer(old: torch.optim.Optimizer, net: nn.Module) -> torch.optim.Optimizer:
    """Same optimizer class and hyperparameters over the trainable parameters; kept parameters keep their state."""
    if len(old.param_groups) != 1:
        raise NotImplementedError("plasticity_injection supports optimizers with one parameter group")
    trainable = [p for p in net.parameters() if p.requires_grad]
    new = type(old)(trainable, **old.defaults)
    new.param_groups[0].update({k: v for k, v in old.param_groups[0].items() if k != "params"})
    for p in trainable:
        if p in old.state:
            new.state[p] = old.state[p]
    return new
