"""NE component 2, dormant-neuron pruning, run inside each growth update (NE paper; `NE/STL_Scheduler.py:504-512`).

Configured by the `pruning:` sub-model of NE's params (`PruningParams`, passed as it is). Two modes (`mode`):
- `paper`: remove connections of τ-dormant neurons (ReDo score s_i = E|h_i| / mean_k E|h_k| ≤ τ, τ = 0 by
  default: fully inactive units). A dormant hidden unit loses its incoming row and its outgoing column(s)
  (`connections` = both | incoming | outgoing); per layer at most ⌊ω·k_grow⌋ of them, a uniformly random
  subset when there are more (the paper's Clip cap keeps the network growing).
- `code`: the official code's effective behaviour: the ⌊ω·k_grow⌋ (ω = 0.4) smallest-|w| active weights, whatever
  the neurons do (its dormancy path is dead code).

Activations for `paper` mode come from one forward pass on a replay batch (the previous update's minibatch),
captured with forward hooks on every hidden layer's norm slot of the network's MLPs, so any agent whose
`hidden_activations(batch)` runs its MLPs works, LayerNorm or not.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field
from torch import nn

from neuroplastic.methods.base import Params
from neuroplastic.metrics import unit_scores
from neuroplastic.nets import ACTIVATION_WIDTH, MLP
from neuroplastic.topology import ops
from neuroplastic.topology.masks import SparseLayer

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Batch


class PruningParams(Params):
    """NE's `pruning:` sub-model (defaults: the paper-faithful `ne`)."""

    enabled: bool = Field(True, description="Dormant-neuron pruning on/off (ablation).")
    mode: Literal["paper", "code"] = Field("paper", description="Dormant-unit connections, or smallest |w|.")
    omega: float = Field(0.4, ge=0.0, le=1.0, description="Prune cap ω·k_grow per layer (code constant 0.4).")
    tau: float = Field(0.0, ge=0.0, description="τ of the dormancy score (0: fully inactive units only).")
    connections: Literal["both", "incoming", "outgoing"] = Field(
        "both", description="Which connections of a dormant unit are candidates."
    )


# Dormant flags per MLP (keyed by id) and hidden layer: a bool per output feature of that layer's activation.
DormantFeatures = dict[int, dict[int, torch.Tensor]]


@contextmanager
def capture_hidden(nets: list[nn.Module]):
    """Record the post-activation output of every hidden layer of every MLP in `nets` while the block runs."""
    store: dict[tuple[int, int], torch.Tensor] = {}
    handles = []
    for mlp in (m for net in nets for m in net.modules() if isinstance(m, MLP)):
        for i, norm in enumerate(mlp.norms):

            def hook(_mod, _inp, out, mlp=mlp, i=i):
                store[(id(mlp), i)] = mlp.act(out)

            handles.append(norm.register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


class DormantPruning:
    def __init__(self, params: PruningParams) -> None:
        self.params = params

    @property
    def enabled(self) -> bool:
        return self.params.enabled

    @property
    def mode(self) -> str:
        return self.params.mode

    @property
    def needs_activations(self) -> bool:
        return self.enabled and self.mode == "paper"

    @torch.no_grad()
    def dormant_features(self, agent: Agent, roles: str | list[str], batch: Batch) -> DormantFeatures:
        """Which output features of each hidden layer of the MLPs of `roles` are τ-dormant on `batch`."""
        roles = [roles] if isinstance(roles, str) else roles
        with capture_hidden([agent.nets[r] for r in roles]) as store:
            agent.hidden_activations(batch)
        out: DormantFeatures = {}
        for (mlp_id, i), h in store.items():
            out.setdefault(mlp_id, {})[i] = unit_scores(h) <= self.params.tau
        return out

    def cap(self, k_grow: int) -> int:
        return int(self.params.omega * k_grow)

    def select(
        self,
        layer: SparseLayer,
        n_active: int,
        k_grow: int,
        dormant: DormantFeatures | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, int | None]:
        """Entries of `layer` to remove at this growth update and their count (None = count on device)."""
        mask = layer.mask
        if not self.enabled or k_grow <= 0:
            return torch.zeros_like(mask), 0
        k = self.cap(k_grow)
        if self.mode == "code":
            return ops.prune_magnitude(layer.weight, mask, k), min(k, n_active)
        if dormant is None or layer.mlp is None:
            return torch.zeros_like(mask), 0
        flags = dormant.get(id(layer.mlp), {})
        rows = cols = None
        out_unit, in_unit = layer.output_unit(), layer.input_unit()
        connections = self.params.connections
        if connections in ("both", "incoming") and out_unit is not None and out_unit in flags:
            widen = ACTIVATION_WIDTH[layer.mlp.spec.activation]
            # A unit is dormant when every feature its activation produces is (CReLU makes two per unit).
            rows = flags[out_unit].view(widen, -1).all(0)
        if connections in ("both", "outgoing") and in_unit is not None and in_unit in flags:
            cols = flags[in_unit]
        if rows is None and cols is None:
            return torch.zeros_like(mask), 0
        return ops.prune_units(mask, rows, cols, k, generator), None
