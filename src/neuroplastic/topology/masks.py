"""Masks of sparse networks: which layers are sparse, initial masks, applying masks, density.

A *sparse layer* is a `MaskedLinear` (nets.py) whose `mask` buffer is a bool tensor of the weight's shape;
`mask is None` means dense. Masked entries of the weight are held at exactly zero: the forward pass stays the
dense matmul, and `Topology.apply_` multiplies the weights by their masks after every optimizer step (Adam
moves zero-gradient entries too, through its moments, so a gradient mask alone would not be enough). Because
masked weights are zero and the forward pass is dense, `weight.grad` after a backward pass is the *dense*
gradient, which gradient-based growth (RigL, NE) scores inactive entries with.

Only `MaskedLinear` and `MaskedConv2d` layers of the chosen network roles are ever masked; LayerNorm weights,
biases, plain `nn.Conv2d` and any other module are left dense (LayerNorm weights may still count towards an ERK budget,
as in the NE code, see `budget_shapes`).

Masks are replaced, never edited in place (`SparseLayer.set_mask`), so caches keyed on the mask tensor's
identity and target networks that alias the online mask stay coherent. The float copies that `apply_`,
`mask_grads_` and `mask_targets_` multiply by are refreshed *in place* when a mask changes, so a captured update
(capture.py), which holds those float tensors, sees every topology update without being rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from neuroplastic import capture
from neuroplastic.nets import MASKED_LAYERS, MLP, MaskedConv2d, MaskedLinear
from neuroplastic.topology.distribution import layer_sparsities

MASK_INITS = ("magnitude", "random")


@dataclass(eq=False)
class SparseLayer:
    """One `MaskedLinear` of a network, with where it sits (for unit ↔ row/column mapping)."""

    role: str  # network role in `agent.nets`, e.g. "critic"
    name: str  # qualified module name inside that network, e.g. "q1.layers.0"
    module: MaskedLinear | MaskedConv2d
    mlp: MLP | None  # the MLP that owns the layer (None for a MaskedLinear outside any MLP)
    index: int  # position in `mlp.layers` (-1 outside an MLP)

    @property
    def key(self) -> str:
        return f"{self.role}.{self.name}"

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight

    @property
    def mask(self) -> torch.Tensor | None:
        return self.module.mask

    @property
    def numel(self) -> int:
        return self.module.weight.numel()

    @property
    def is_sparse(self) -> bool:
        return self.module.mask is not None

    @property
    def is_first(self) -> bool:
        return self.mlp is not None and self.index == 0

    @property
    def is_last(self) -> bool:
        return self.mlp is not None and self.index == len(self.mlp.layers) - 1

    def set_mask(self, mask: torch.Tensor | None) -> None:
        """Install a new mask (a new tensor, never edited in place) and zero the weight outside it."""
        self.module.set_mask(mask)

    # --- unit mapping (for neuron-level operations such as dormant-neuron pruning) ---------------
    def output_unit(self) -> int | None:
        """Index of the hidden layer whose units are this layer's rows (None for an MLP's output layer)."""
        if self.mlp is None or self.is_last:
            return None
        return self.index

    def input_unit(self) -> int | None:
        """Index of the hidden layer whose units feed this layer's columns (None for an MLP's first layer)."""
        if self.mlp is None or self.is_first:
            return None
        return self.index - 1


def find_layers(net: nn.Module, role: str) -> list[SparseLayer]:
    """Every `MaskedLinear` / `MaskedConv2d` of `net`, in registration order, with its owning MLP if any."""
    owner: dict[int, tuple[MLP, int]] = {}
    for module in net.modules():
        if isinstance(module, MLP):
            for i, layer in enumerate(module.layers):
                owner[id(layer)] = (module, i)
    out = []
    for name, module in net.named_modules():
        if isinstance(module, MASKED_LAYERS):
            mlp, index = owner.get(id(module), (None, -1))
            out.append(SparseLayer(role, name, module, mlp, index))
    return out


def budget_shapes(net: nn.Module, layers: Sequence[SparseLayer], count_norms: bool) -> dict[str, tuple[int, ...]]:
    """Weight shapes that make up a network's sparsity budget: its linear layers, plus its LayerNorm weights
    when `count_norms` (the NE code counts every module with a `.weight`, LayerNorm included: `NE/utils.py:23-55`)."""
    shapes = {layer.name: tuple(layer.weight.shape) for layer in layers}
    if count_norms:
        for name, module in net.named_modules():
            if isinstance(module, nn.LayerNorm) and module.weight is not None:
                shapes[name] = tuple(module.weight.shape)
    return shapes


def init_mask(weight: torch.Tensor, n_active: int, init: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """A bool mask with exactly `n_active` ones.

    `magnitude`: the largest |w| of the current weight (the NE code's `weight_sparsify`, `NE/STL_Scheduler.py:347-373`);
    `random`: a uniformly random subset (Erdős–Rényi), drawn with `generator`.
    """
    n = weight.numel()
    if not 0 <= n_active <= n:
        raise ValueError(f"n_active={n_active} outside [0, {n}]")
    if init == "magnitude":
        scores = weight.detach().abs().flatten()
    elif init == "random":
        scores = torch.rand(n, generator=generator, device=weight.device) if generator is not None else None
        if scores is None:
            raise ValueError("random mask init needs a generator")
    else:
        raise ValueError(f"unknown mask init {init!r} (known: {', '.join(MASK_INITS)})")
    mask = torch.zeros(n, dtype=torch.bool, device=weight.device)
    mask[torch.topk(scores, n_active, sorted=False).indices] = True
    return mask.view_as(weight)


class Topology:
    """The sparse layers of some networks of an agent, and the operations every sparse method needs.

    Build it once after the networks exist (`Method.on_build`), `init_masks(...)` per role, then call
    `apply_(role)` after each optimizer step of that role and `mask_targets_(targets, role)` after each
    Polyak update. Grow/prune primitives live in `topology.ops`; they return new masks that go through
    `SparseLayer.set_mask`.
    """

    def __init__(self, nets: dict[str, nn.Module], roles: Iterable[str]) -> None:
        roles = list(roles)
        missing = [r for r in roles if r not in nets]
        if missing:
            raise KeyError(f"sparse roles {missing} are not networks of this agent (it has {sorted(nets)})")
        self.nets = {r: nets[r] for r in roles}
        self.layers: dict[str, list[SparseLayer]] = {r: find_layers(nets[r], r) for r in roles}
        self._apply_cache: dict[str, tuple[list, list[torch.Tensor], list[torch.Tensor]]] = {}
        self._target_cache: dict[str, tuple] = {}
        self._traced_targets: dict[str, tuple] = {}

    @property
    def roles(self) -> list[str]:
        return list(self.layers)

    def all_layers(self) -> list[SparseLayer]:
        return [layer for layers in self.layers.values() for layer in layers]

    def sparse_layers(self, role: str | None = None) -> list[SparseLayer]:
        layers = self.all_layers() if role is None else self.layers[role]
        return [layer for layer in layers if layer.is_sparse]

    # --- initial masks --------------------------------------------------------------------------
    def init_masks(
        self,
        role: str,
        sparsity: float,
        distribution: str = "erk",
        init: str = "magnitude",
        dense_first_last: bool = False,
        count_norms: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, float]:
        """Mask `role` at global `sparsity`; returns the per-layer sparsity (0 = left dense, no mask).

        The budget is every linear weight of the network (plus LayerNorm weights when `count_norms`), except
        the first and last layer of each MLP when `dense_first_last`: those stay dense and do not count.

        Layer l keeps N_l − ⌊S_l·N_l⌋ entries (the NE code's count). Layers whose sparsity is ≤ 0 stay dense
        (`mask is None`) and never grow or shrink.
        """
        layers = self.layers[role]
        shapes = budget_shapes(self.nets[role], layers, count_norms)
        # Forced-dense first/last layers sit outside the budget: s₀ is the sparsity of the other layers (with
        # them inside, a wide input layer such as Humanoid's 376 inputs would leave no budget at s₀ = 0.8).
        for layer in layers:
            if dense_first_last and (layer.is_first or layer.is_last):
                del shapes[layer.name]
        sparsities = layer_sparsities(distribution, shapes, sparsity) if sparsity > 0 and shapes else {}
        out = {}
        for layer in layers:
            s = sparsities.get(layer.name, 0.0)
            out[layer.name] = max(s, 0.0)
            if s <= 0.0:
                layer.set_mask(None)
                continue
            n_active = layer.numel - int(s * layer.numel)
            layer.set_mask(init_mask(layer.weight, n_active, init, generator))
        return out

    # --- keeping masked entries at zero ---------------------------------------------------------
    def _apply_lists(self, role: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        cached = self._apply_cache.get(role)
        if cached is not None and capture.tracing():
            # Inside a captured update: the lists as `refresh_` left them just before the call; the identity
            # checks below stay out of the trace.
            return cached[1], cached[2]
        layers = self.sparse_layers(role)
        masks = [layer.mask for layer in layers]
        cached = self._apply_cache.get(role)
        stale = cached is None or len(cached[0]) != len(masks)
        if stale:
            weights = [layer.weight for layer in layers]
            float_masks = [m.to(layer.weight.dtype) for m, layer in zip(masks, layers, strict=True)]
            cached = (masks, weights, float_masks)
            self._apply_cache[role] = cached
        elif any(a is not b for a, b in zip(cached[0], masks, strict=True)):
            for i, (old, new) in enumerate(zip(cached[0], masks, strict=True)):
                if old is not new:
                    cached[2][i].copy_(new)
            cached = (masks, cached[1], cached[2])
            self._apply_cache[role] = cached
        return cached[1], cached[2]

    def refresh_(self, role: str) -> None:
        """Bring the cached weight and float-mask lists of `role` up to date with its masks (in place where the
        set of sparse layers is unchanged). A captured update reads those lists without checking them, so its
        host side calls this before every captured call (capture.py)."""
        self._apply_lists(role)

    @torch.no_grad()
    def apply_(self, role: str) -> None:
        """w ← w ⊙ mask for every sparse layer of `role` (float copies of the masks make this one fused op)."""
        weights, masks = self._apply_lists(role)
        if weights:
            torch._foreach_mul_(weights, masks)

    @torch.no_grad()
    def mask_grads_(self, role: str) -> None:
        """grad ← grad ⊙ mask for every sparse layer of `role`: masked entries then get no gradient, so their
        Adam moments decay instead of tracking the dense gradient (what a gradient-mask hook does)."""
        weights, masks = self._apply_lists(role)
        grads = [w.grad for w in weights if w.grad is not None]
        if len(grads) == len(weights) and grads:
            torch._foreach_mul_(grads, masks)
        else:
            for w, m in zip(weights, masks, strict=True):
                if w.grad is not None:
                    w.grad.mul_(m)

    @torch.no_grad()
    def mask_targets_(self, targets: dict[str, nn.Module], role: str) -> None:
        """Target weights ← target weights ⊙ *online* masks, so target and online share one topology.

        The target's own `mask` buffer is pointed at the online mask, so a checkpoint of the targets stores
        the current topology rather than the one copied when the targets were built.
        """
        if role not in targets:
            return
        _, float_masks = self._apply_lists(role)
        if capture.tracing() and role in self._traced_targets:
            # The target weights as `refresh_targets_` left them just before the captured call.
            if self._traced_targets[role][2]:
                torch._foreach_mul_(self._traced_targets[role][2], float_masks)
            return
        online_masks = self._apply_cache[role][0]
        cached = self._target_cache.get(role)
        stale = cached is None or cached[0] is not targets[role] or len(cached[1]) != len(online_masks)
        refreshed = stale or any(a is not b for a, b in zip(cached[1], online_masks, strict=True))
        if refreshed:
            cached = (targets[role], list(online_masks), self._point_target_masks(targets, role))
            self._target_cache[role] = cached
        # Between mask changes the product is the identity: online weights are zero outside their masks after
        # every optimizer step (`apply_`), so a Polyak update keeps the target's masked entries at exactly zero.
        # Multiplying only after a mask changed saves a pass over every sparse weight per target update. A
        # captured update cannot see this host-side check, so it always multiplies.
        if cached[2] and (refreshed or capture.tracing()):
            torch._foreach_mul_(cached[2], float_masks)

    def before_capture_(self, targets: dict[str, nn.Module]) -> None:
        """Host side, before every captured update: every role's weight and mask lists (`refresh_`) and target
        lists (`refresh_targets_`), which the captured function reads without checks."""
        for role in self.roles:
            self.refresh_(role)
            self.refresh_targets_(targets, role)

    def refresh_targets_(self, targets: dict[str, nn.Module], role: str) -> None:
        """Host side, before every captured update (after `refresh_`): the target weights a captured
        `mask_targets_` multiplies, and the target's mask buffers pointed at the online masks, brought up to date
        when the targets or the online masks changed. A captured target update then needs no host-side check,
        also when it is the run's first (DQN's periodic copy) or the first after a topology update. The eager
        path keeps its own record (`_target_cache`), so it still multiplies once after a mask change."""
        if role not in targets:
            return
        online_masks = self._apply_cache[role][0]
        cached = self._traced_targets.get(role)
        if cached is None or cached[0] is not targets[role] or cached[1] is not online_masks:
            self._traced_targets[role] = (targets[role], online_masks, self._point_target_masks(targets, role))

    def _point_target_masks(self, targets: dict[str, nn.Module], role: str) -> list[torch.Tensor]:
        """Point the target's mask buffers of `role`'s sparse layers at the online masks; their target weights."""
        by_name = {name: m for name, m in targets[role].named_modules() if isinstance(m, MASKED_LAYERS)}
        target_weights = []
        for layer in self.sparse_layers(role):
            target = by_name[layer.name]
            target.mask = layer.mask
            target_weights.append(target.weight)
        return target_weights


def density_metrics(nets: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """`density.<role>` and `density.<role>.<layer>` for every network with at least one mask.

    Density = active entries / all entries, over the weights of the network's `MaskedLinear` layers (dense
    layers count fully; biases and LayerNorm weights are not counted). Values are device tensors.
    """
    out: dict[str, torch.Tensor] = {}
    for role, net in nets.items():
        layers = find_layers(net, role)
        if not any(layer.is_sparse for layer in layers):
            continue
        active, total = [], 0
        for layer in layers:
            if layer.mask is None:
                count = torch.tensor(float(layer.numel), device=layer.weight.device)
            else:
                count = layer.mask.sum().float()
            out[f"density.{role}.{layer.name}"] = count / layer.numel
            active.append(count)
            total += layer.numel
        out[f"density.{role}"] = torch.stack(active).sum() / total
    return out
