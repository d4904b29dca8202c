"""Shrink & Perturb (Ash & Adams, 2020; as a plasticity baseline in Ma et al., ICLR 2024).

Every `interval` environment steps, every parameter of the selected networks becomes θ ← λ·θ + μ·θ_rand, with
θ_rand a freshly initialised network of the same role (the agent's own initializer, under a seed derived from
the run seed and the event number, drawn without touching the global RNG). Masked entries stay zero. Target
networks and optimizer state are left alone (targets follow by Polyak averaging). Ma et al. do not give λ, μ
or the period; the defaults (λ 0.8, μ 0.2, every 200k env steps, critic only) are ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field

from neuroplastic.methods._common import Nets, fresh_net, reapply_masks, seed_for, select_nets
from neuroplastic.methods.base import Method, Params

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent


class ShrinkPerturbParams(Params):
    interval: int = Field(200_000, gt=0, description="Env steps between shrink-and-perturb events.")
    shrink: float = Field(0.8, ge=0, le=1, description="λ, the factor on the current weights.")
    perturb: float = Field(0.2, ge=0, description="μ, the factor on the fresh initialisation.")
    nets: Nets = Field("critic", description="Networks that are shrunk and perturbed (Ma et al.: critic).")


class ShrinkPerturb(Method):
    name = "shrink_perturb"
    smoke_params: ClassVar[dict[str, Any]] = {"interval": 700}
    Params = ShrinkPerturbParams
    params: ShrinkPerturbParams

    def on_build(self, agent: Agent) -> None:
        select_nets(self.params.nets, agent, self.name)

    def on_step(self, agent: Agent, step: int) -> None:
        p = self.params
        if step % p.interval == 0 and step < self.ctx.steps:
            self.apply(agent, step // p.interval)

    @torch.no_grad()
    def apply(self, agent: Agent, number: int) -> None:
        p = self.params
        for role in select_nets(p.nets, agent, self.name):
            online = agent.nets[role]
            rand = dict(fresh_net(agent, role, seed_for(self.ctx, "shrink_perturb", number, role)).named_parameters())
            for name, param in online.named_parameters():
                if name not in rand or rand[name].shape != param.shape:
                    raise RuntimeError(f"shrink_perturb: {role}.{name} has no counterpart in a freshly built network")
                param.mul_(p.shrink).add_(rand[name], alpha=p.perturb)
            reapply_masks(online)
