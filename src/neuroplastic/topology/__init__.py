"""Sparse-topology engine shared by NE and the sparse-training baselines (static, SET, RigL, GMP).

- `distribution`: per-layer sparsities at a global sparsity (ERK, uniform), with forced-dense layers.
- `masks`: `SparseLayer` (a `MaskedLinear` and where it sits), `Topology` (find layers, initial masks, keep
  masked weights at zero after optimizer steps, mask target networks), `density_metrics`.
- `ops`: selection primitives: prune by magnitude, prune the connections of given neurons, grow by |dense
  gradient|, grow at random, initialise grown weights, sparsity-aware (sparse-fan Glorot) init, reset Adam
  state of changed entries.

Typical use inside a method (see methods/ne.py for a complete one):

    on_build:               topo = Topology(agent.nets, ["actor", "critic"]); topo.init_masks("critic", 0.8)
    before_update:          topo.sync_(agent.targets); decide whether a topology update is due
    before_optimizer_step:  (when due) removed = ops.prune_magnitude(layer.weight, layer.mask, k)
                            grown = ops.grow_gradient(layer.weight.grad, ~layer.mask | removed, k)
                            layer.set_mask((layer.mask & ~removed) | grown); topo.sync_(agent.targets, [net])
    after_optimizer_step:   topo.apply_(net)
    after_target_update:    topo.mask_targets_(role) for each role
"""

from neuroplastic.topology import ops
from neuroplastic.topology.distribution import erk_sparsities, layer_sparsities, uniform_sparsities
from neuroplastic.topology.masks import SparseLayer, Topology, budget_shapes, density_metrics, find_layers, init_mask

__all__ = [
    "SparseLayer",
    "Topology",
    "budget_shapes",
    "density_metrics",
    "erk_sparsities",
    "find_layers",
    "init_mask",
    "layer_sparsities",
    "ops",
    "uniform_sparsities",
]
