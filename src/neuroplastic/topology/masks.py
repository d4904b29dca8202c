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
identity and target networks that alias the online mask stay coherent. `apply_`, `mask_grads_` and
`mask_targets_` are tensor work only: they multiply by float copies of the masks that the host brings up to date
in `Topology.sync_`, *in place*, so a captured update (capture.py), which holds those float tensors, sees every
topology update without being rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

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


@dataclass(eq=False)
class _SyncedMasks:
    """A role's sparse layers as `Topology.sync_` last saw them: their masks, weights, and float mask copies."""

    masks: list[torch.Tensor]
    weights: list[torch.Tensor]
    float_masks: list[torch.Tensor]


class Topology:
    """The sparse layers of some networks of an agent, and the operations every sparse method needs.

    Build it once after the networks exist (`Method.on_build`), `init_masks(...)` per role; call `sync_(targets)`
    on the host before each update (and after changing masks), `apply_(role)` after each optimizer step of that
    role and `mask_targets_(role)` after each target update. Grow/prune primitives live in `topology.ops`; they
    return new masks that go through `SparseLayer.set_mask`.
    """

    def __init__(self, nets: dict[str, nn.Module], roles: Iterable[str]) -> None:
        roles = list(roles)
        missing = [r for r in roles if r not in nets]
        if missing:
            raise KeyError(f"sparse roles {missing} are not networks of this agent (it has {sorted(nets)})")
        self.nets = {r: nets[r] for r in roles}
        self.layers: dict[str, list[SparseLayer]] = {r: find_layers(nets[r], r) for r in roles}
        # What `sync_` last brought up to date: per role the masks, weights and float masks; the target weights
        # the masks apply to, and the (target network, online masks) they were pointed at.
        self._synced: dict[str, _SyncedMasks] = {}
        self._target_weights: dict[str, list[torch.Tensor]] = {}
        self._target_seen: dict[str, tuple[nn.Module, list[torch.Tensor | None]]] = {}

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
    def sync_(self, targets: dict[str, nn.Module], roles: Iterable[str] | None = None) -> None:
        """Host side: bring what the mask hooks multiply by up to date with the masks, for `roles` (default all).

        Per role: its sparse weights and float copies of their masks (written in place while the set of sparse
        layers is unchanged, so tensors held by a captured update see every new mask), and the target weights
        the masks apply to, with the target's mask buffers pointed at the online masks (a checkpoint of the
        targets then stores the current topology). `apply_`, `mask_grads_` and `mask_targets_` read these lists
        without checking them: they are tensor work only. So a method calls this in its host hook before every
        update (`Method.before_update`) and again right after it changed masks inside an update.
        """
        for role in self.roles if roles is None else roles:
            self._sync_masks(role)
            self._sync_targets(targets, role)

    def _sync_masks(self, role: str) -> None:
        layers = self.sparse_layers(role)
        masks = [layer.mask for layer in layers]
        synced = self._synced.get(role)
        if synced is None or len(synced.masks) != len(masks):
            weights = [layer.weight for layer in layers]
            float_masks = [m.to(layer.weight.dtype) for m, layer in zip(masks, layers, strict=True)]
            self._synced[role] = _SyncedMasks(masks, weights, float_masks)
            return
        for i, (old, new) in enumerate(zip(synced.masks, masks, strict=True)):
            if old is not new:
                synced.float_masks[i].copy_(new)
                synced.masks[i] = new

    def _sync_targets(self, targets: dict[str, nn.Module], role: str) -> None:
        if role not in targets:
            self._target_weights.pop(role, None)
            return
        online_masks = list(self._synced[role].masks)
        seen = self._target_seen.get(role)
        unchanged = (
            seen is not None
            and seen[0] is targets[role]
            and len(seen[1]) == len(online_masks)
            and all(a is b for a, b in zip(seen[1], online_masks, strict=True))
        )
        if not unchanged:
            self._target_weights[role] = self._point_target_masks(targets, role)
            self._target_seen[role] = (targets[role], online_masks)

    def _point_target_masks(self, targets: dict[str, nn.Module], role: str) -> list[torch.Tensor]:
        """Point the target's mask buffers of `role`'s sparse layers at the online masks; their target weights."""
        by_name = {name: m for name, m in targets[role].named_modules() if isinstance(m, MASKED_LAYERS)}
        target_weights = []
        for layer in self.sparse_layers(role):
            target = by_name[layer.name]
            target.mask = layer.mask
            target_weights.append(target.weight)
        return target_weights

    @torch.no_grad()
    def apply_(self, role: str) -> None:
        """w ← w ⊙ mask for every sparse layer of `role` (float copies of the masks make this one fused op)."""
        synced = self._synced[role]
        if synced.weights:
            torch._foreach_mul_(synced.weights, synced.float_masks)

    @torch.no_grad()
    def mask_grads_(self, role: str) -> None:
        """grad ← grad ⊙ mask for every sparse layer of `role`: masked entries then get no gradient, so their
        Adam moments decay instead of tracking the dense gradient (what a gradient-mask hook does)."""
        synced = self._synced[role]
        grads = [w.grad for w in synced.weights if w.grad is not None]
        if len(grads) == len(synced.weights) and grads:
            torch._foreach_mul_(grads, synced.float_masks)
        else:
            for w, m in zip(synced.weights, synced.float_masks, strict=True):
                if w.grad is not None:
                    w.grad.mul_(m)

    @torch.no_grad()
    def mask_targets_(self, role: str) -> None:
        """Target weights ← target weights ⊙ *online* masks (the targets given to `sync_`), so target and online
        share one topology.

        Between mask changes this changes no bit: online weights are ±0 outside their masks after every optimizer
        step (`apply_`), so a Polyak update or a hard copy leaves the target's masked entries at ±0, and ±0·0 and
        x·1 are exact. It runs at every target update anyway, so that it needs no host-side check (which a
        captured update could not see) of whether a mask changed since the last one.
        """
        target_weights = self._target_weights.get(role)
        if target_weights:
            torch._foreach_mul_(target_weights, self._synced[role].float_masks)


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
