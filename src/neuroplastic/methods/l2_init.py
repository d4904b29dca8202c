"""L2-Init (Kumar et al., 2023, "regenerative regularization"; as used by Ma et al., ICLR 2024).

Adds λ·‖θ − θ₀‖² (squared L2 distance of every parameter of the network to its value at the start of training)
to the loss of each selected network, through `extra_loss`. θ₀ is recorded at the first environment step (after
every method's `on_build`, so masks or architecture edits are already in place) and checkpointed. Ma et al.
applied it to the critic with λ = 1e-2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field

from neuroplastic.methods._common import Nets, select_nets
from neuroplastic.methods.base import Method, Params

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent


class L2InitParams(Params):
    coef: float = Field(1e-2, ge=0, description="λ (Ma et al.: 1e-2).")
    nets: Nets = Field("critic", description="Networks whose loss gets the term (Ma et al.: critic).")


class L2Init(Method):
    name = "l2_init"
    Params = L2InitParams
    params: L2InitParams

    def __init__(self, params: L2InitParams, ctx) -> None:
        super().__init__(params, ctx)
        self.anchors: dict[str, list[torch.Tensor]] | None = None

    def on_build(self, agent: Agent) -> None:
        select_nets(self.params.nets, agent, self.name)

    def on_step(self, agent: Agent, step: int) -> None:
        if self.anchors is None:
            self.anchors = {
                role: [p.detach().clone() for p in agent.nets[role].parameters()]
                for role in select_nets(self.params.nets, agent, self.name)
            }

    def extra_loss(self, agent: Agent, net: str) -> torch.Tensor | None:
        if self.anchors is None or net not in self.anchors:
            return None
        params = list(agent.nets[net].parameters())
        anchors = self.anchors[net]
        if len(params) != len(anchors):
            raise RuntimeError(f"l2_init: the {net} network changed its parameters since θ₀ was recorded")
        total = sum((p - a).pow(2).sum() for p, a in zip(params, anchors, strict=True))
        return self.params.coef * total

    def state_dict(self) -> dict[str, Any]:
        if self.anchors is None:
            return {"anchors": None}
        return {"anchors": {k: [t.cpu() for t in v] for k, v in self.anchors.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        a = state["anchors"]
        self.anchors = None if a is None else {k: [t.to(self.ctx.device) for t in v] for k, v in a.items()}
