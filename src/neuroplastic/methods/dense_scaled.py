"""`dense_scaled`: the sparse-training study's parameter-matched dense baseline (Graesser et al. 2022, "dense,
scaled"): a dense network whose hidden widths (and conv channels) are all scaled by one factor so that it has
as many parameters as the standard network at global sparsity `sparsity`.

The parameter counts are counted, not estimated: the sparse count is the standard network's (every weight,
bias and other parameter) minus the entries ERK at `sparsity` masks out of its maskable layers, exactly as the
sparse methods mask them (layer l keeps N_l − ⌊s_l·N_l⌋; the study's ERK and uniform keep the same total up to
rounding); the dense count is that of the scaled network built from its spec. The factor is the one whose
rounded widths bring the dense count closest to the sparse one (bisection on the monotone count); then each
hidden width is nudged by up to ±3 units where that brings the count closer (small networks at high sparsity
would otherwise miss the target by the granularity of one shared factor). The method only edits specs
(`net_spec`), so the run is otherwise a plain dense run; `log_metrics` reports `params.<role>` and the factor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from pydantic import Field

from neuroplastic.methods._common import Nets, select_nets, selects
from neuroplastic.methods.base import Method, Params, RunContext
from neuroplastic.nets import MLPSpec, NatureCNNSpec, build_module, scale_width
from neuroplastic.topology.distribution import layer_sparsities
from neuroplastic.topology.masks import find_layers

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import ReplayBuffer


class DenseScaledParams(Params):
    sparsity: float = Field(0.9, ge=0.5, le=0.99, description="The sparse network whose parameter count to match.")
    nets: Nets = Field("both", description="Networks (roles of agent.nets) whose widths are scaled.")


def param_count(spec: MLPSpec | NatureCNNSpec) -> int:
    """Parameters of the network `spec` builds (built on the meta device: shapes only, no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in build_module(spec).parameters())


def _widths(spec: MLPSpec | NatureCNNSpec) -> list[int]:
    return [*spec.channels, spec.hidden] if isinstance(spec, NatureCNNSpec) else list(spec.hidden)


def _with_widths(spec: MLPSpec | NatureCNNSpec, widths: list[int]) -> MLPSpec | NatureCNNSpec:
    if isinstance(spec, NatureCNNSpec):
        return spec.with_(channels=tuple(widths[:-1]), hidden=widths[-1])
    return spec.with_(hidden=tuple(widths))


def matching_spec(spec: MLPSpec | NatureCNNSpec, target: int) -> MLPSpec | NatureCNNSpec:
    """The scaled dense spec whose parameter count is closest to `target` (see the module docstring)."""
    best = scale_width(spec, matching_scale(spec, target))
    error = abs(param_count(best) - target)
    for _ in range(2):
        for slot in reversed(range(len(_widths(best)))):
            for delta in (-3, -2, -1, 1, 2, 3):
                widths = _widths(best)
                widths[slot] = max(1, widths[slot] + delta)
                candidate = _with_widths(best, widths)
                err = abs(param_count(candidate) - target)
                if err < error:
                    best, error = candidate, err
    return best


def sparse_param_count(spec: MLPSpec | NatureCNNSpec, sparsity: float, distribution: str = "erk") -> int:
    """Parameters of the network of `spec` once ERK/uniform at `sparsity` masks its maskable layers."""
    with torch.device("meta"):
        net = build_module(spec)
    layers = find_layers(net, "net")
    shapes = {layer.name: tuple(layer.weight.shape) for layer in layers}
    sparsities = layer_sparsities(distribution, shapes, sparsity)
    removed = sum(int(s * layer.numel) for layer in layers if (s := sparsities[layer.name]) > 0)
    return sum(p.numel() for p in net.parameters()) - removed


def matching_scale(spec: MLPSpec | NatureCNNSpec, target: int) -> float:
    """The width factor whose scaled dense network has the parameter count closest to `target`."""
    lo, hi = 1e-3, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if param_count(scale_width(spec, mid)) < target:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda m: abs(param_count(scale_width(spec, m)) - target))


class DenseScaled(Method):
    name: ClassVar[str] = "dense_scaled"
    Params: ClassVar[type[DenseScaledParams]] = DenseScaledParams
    params: DenseScaledParams

    def __init__(self, params: DenseScaledParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        self.scale: dict[str, float] = {}
        self.counts: dict[str, tuple[int, int]] = {}  # role → (sparse target, dense scaled)

    def net_spec(self, role: str, spec: MLPSpec | NatureCNNSpec) -> MLPSpec | NatureCNNSpec:
        if not selects(self.params.nets, role):
            return spec
        target = sparse_param_count(spec, self.params.sparsity)
        scaled = matching_spec(spec, target)
        self.scale[role] = sum(_widths(scaled)) / sum(_widths(spec))
        self.counts[role] = (target, param_count(scaled))
        return scaled

    def on_build(self, agent: Agent) -> None:
        select_nets(self.params.nets, agent, self.name)  # a named network the agent lacks is an error

    def log_metrics(self, agent: Agent, replay: ReplayBuffer, step: int) -> dict[str, float]:
        out = {}
        for role, (target, count) in self.counts.items():
            out[f"params.{role}"] = float(count)
            out[f"params.{role}.sparse_target"] = float(target)
            out[f"width_scale.{role}"] = self.scale[role]  # mean factor over the hidden widths
        return out
