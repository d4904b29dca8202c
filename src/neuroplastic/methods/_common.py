"""Helpers shared by the methods: which networks a method acts on (`Nets`), seeded fresh networks, name-based
parameter copies.

Fresh weights (Reset, ReDo, Shrink & Perturb, Plasticity Injection) come from `fresh_net`, which builds a new
network for a role through the agent's own `build_net` (so the layer's own initializer and every method's
`net_spec` edit apply) inside `torch.random.fork_rng` with a seed derived from the run seed. The global torch
RNG stream is therefore exactly the same whether or not a method drew fresh weights, which is what keeps a
method's run bit-identical to the plain agent before it first acts, and keeps resumes exact.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Annotated

import numpy as np
import torch
from pydantic import AfterValidator
from torch import nn

from neuroplastic.nets import MASKED_LAYERS, MLP, mlps

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.methods.base import RunContext


def _distinct_names(value):
    if isinstance(value, list) and (not value or len(set(value)) != len(value)):
        raise ValueError(f"a list of networks must be non-empty and distinct, got {value}")
    return value


Nets = Annotated[str | list[str] | None, AfterValidator(_distinct_names)]
"""Which networks (roles of `agent.nets`) a method acts on, the one type every method's `nets` param uses: one
role (`actor`, `critic`, `encoder`, ...), `both` (= actor and critic, those of them the agent has: DQN's Q-network
is its `critic`), a list of roles (e.g. `[encoder, critic]`), or None (= every network of the agent). Names are
checked against the agent when the method is built."""


def selects(nets: Nets, role: str) -> bool:
    """Whether `nets` includes network `role` (usable before the agent exists, e.g. in `net_spec`)."""
    if nets is None:
        return True
    if isinstance(nets, list):
        return role in nets
    return role in ("actor", "critic") if nets == "both" else role == nets


def select_nets(nets: Nets, agent: Agent, method: str) -> list[str]:
    """The roles of `agent` that `nets` names (in the order named); a named role it lacks is an error."""
    if nets is None:
        return list(agent.nets)
    if nets == "both":
        present = [r for r in ("actor", "critic") if r in agent.nets]
        if present:
            return present
    wanted = nets if isinstance(nets, list) else ["actor", "critic"] if nets == "both" else [nets]
    missing = [r for r in wanted if r not in agent.nets]
    if missing:
        raise ValueError(f"{method}.nets: agent {agent.name!r} has no network(s) {missing} (has {sorted(agent.nets)})")
    return list(wanted)


def seed_for(ctx: RunContext, *tags: str | int) -> int:
    """A 63-bit seed that depends only on the run seed, the method's position in the stack and `tags`."""
    words = [ctx.seed, ctx.method_index]
    for tag in tags:
        words.append(zlib.crc32(tag.encode()) if isinstance(tag, str) else int(tag))
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def fresh_net(agent: Agent, role: str, seed: int) -> nn.Module:
    """A newly initialised network for `role`, drawn without touching the global torch RNG stream."""
    # Only the CPU generator is forked and seeded: networks are initialised on the CPU and then moved.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return agent.build_net(role)


def mlp_roles(agent: Agent, nets: Nets = None) -> list[str]:
    """Roles of `agent` selected by `nets` that contain at least one MLP (the temperature of SAC has none)."""
    return [r for r in agent.nets if selects(nets, r) and mlps(agent.nets[r])]


def get_mlp(module: nn.Module, name: str) -> MLP:
    sub = module.get_submodule(name) if name else module
    if not isinstance(sub, MLP):
        raise TypeError(f"{name!r} is a {type(sub).__name__}, not an MLP")
    return sub


@torch.no_grad()
def copy_entries(dst: nn.Module, src: nn.Module, keep: callable | None = None) -> list[str]:
    """Copy parameters and buffers of `src` into `dst` by name (masks excluded); returns the copied names.

    `keep(name)` selects which entries to copy. Structures must match: a name missing on either side is an
    error, because it means another method changed the network in a way this copy cannot follow.
    """
    dst_state = dict(dst.named_parameters()) | {n: b for n, b in dst.named_buffers() if b is not None}
    src_state = dict(src.named_parameters()) | {n: b for n, b in src.named_buffers() if b is not None}
    dst_names = {n for n in dst_state if not n.endswith("mask")}
    src_names = {n for n in src_state if not n.endswith("mask")}
    if dst_names != src_names:
        missing = sorted(dst_names ^ src_names)[:6]
        raise RuntimeError(f"network structure changed since build; cannot copy fresh weights (differs at {missing})")
    copied = []
    for name in sorted(dst_names):
        if keep is None or keep(name):
            dst_state[name].copy_(src_state[name].to(dst_state[name].device))
            copied.append(name)
    reapply_masks(dst)
    return copied


@torch.no_grad()
def reapply_masks(module: nn.Module) -> None:
    """Keep masked entries at exactly zero after weights were overwritten (sparse topologies, e.g. NE)."""
    for sub in module.modules():
        if isinstance(sub, MASKED_LAYERS) and sub.mask is not None:
            sub.weight.mul_(sub.mask)
