"""Grow and prune primitives on one layer's mask (shared by NE and SET / RigL / GMP).

Every primitive takes plain tensors and returns a bool tensor of the weight's shape that *selects* entries
(to remove from, or add to, a mask); the caller combines selections and installs the new mask with
`SparseLayer.set_mask`. Counts `k` are Python ints: `select_top` picks exactly min(k, #eligible) entries, so a
caller that knows how many entries are eligible (it usually does: they are mask counts it keeps on the host)
knows every count without reading the device. Only data-dependent selections (the connections of dormant
neurons) need a device count.

Selection uses `torch.topk` (ties broken by the kernel, deterministically on one device), which is an order of
magnitude faster than a full sort on the 65k-entry layers of a 256-wide MLP.
"""

from __future__ import annotations

import math

import torch

GROWN_INITS = ("zero", "lecun")


def select_top(scores: torch.Tensor, eligible: torch.Tensor, k: int) -> torch.Tensor:
    """Bool selection of the `k` highest `scores` among `eligible` entries (all of them if fewer than k).

    `scores` must be finite on eligible entries.
    """
    flat = eligible.reshape(-1)
    chosen = torch.zeros_like(flat)
    k = min(int(k), flat.numel())
    if k <= 0:
        return chosen.view_as(eligible)
    masked = scores.reshape(-1).masked_fill(~flat, -math.inf)
    values, index = torch.topk(masked, k, sorted=False)
    chosen[index] = values > -math.inf
    return chosen.view_as(eligible)


def prune_magnitude(weight: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """The `k` active entries of smallest |w| (ties among them in kernel order)."""
    return select_top(-weight.detach().abs(), mask, k)


def unit_connections(
    mask: torch.Tensor, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> torch.Tensor:
    """Active entries that belong to the given neurons: the incoming row of every output unit flagged in
    `rows` (bool, one per row) and the outgoing column of every input feature flagged in `cols` (bool, one
    per column)."""
    out = torch.zeros_like(mask)
    if rows is not None:
        out |= rows.view(-1, 1)
    if cols is not None:
        out |= cols.view(1, -1)
    return out & mask


def prune_units(
    mask: torch.Tensor,
    rows: torch.Tensor | None,
    cols: torch.Tensor | None,
    cap: int | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Connections of the given neurons to remove, at most `cap` of them chosen uniformly at random (all of
    them when `cap` is None). The count is data-dependent: read it from the result when needed."""
    candidates = unit_connections(mask, rows, cols)
    if cap is None:
        return candidates
    return select_top(_uniform(mask, generator), candidates, cap)


def grow_gradient(grad: torch.Tensor, eligible: torch.Tensor, k: int) -> torch.Tensor:
    """The `k` eligible (inactive) entries with the largest |dense gradient| (RigL's and NE's criterion)."""
    return select_top(grad.abs(), eligible, k)


def grow_random(eligible: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`k` eligible entries chosen uniformly at random (SET's criterion)."""
    return select_top(_uniform(eligible, generator), eligible, k)


def _uniform(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(like.shape, generator=generator, device=like.device)


@torch.no_grad()
def init_grown_(weight: torch.Tensor, new: torch.Tensor, init: str, generator: torch.Generator | None = None) -> None:
    """Initialise newly active entries: `zero` (the function is unchanged) or `lecun` (N(0, 1/fan_in))."""
    if init == "zero":
        weight.masked_fill_(new, 0.0)
    elif init == "lecun":
        std = 1.0 / math.sqrt(weight.shape[1])
        fresh = torch.randn(weight.shape, generator=generator, device=weight.device, dtype=weight.dtype) * std
        weight.copy_(torch.where(new, fresh, weight))
    else:
        raise ValueError(f"unknown grown-weight init {init!r} (known: {', '.join(GROWN_INITS)})")


@torch.no_grad()
def init_sparse_glorot_(weight: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None) -> None:
    """Sparsity-aware Glorot-uniform init of a masked layer (Graesser et al. 2022, `fixed_sparse_init`): every
    active entry of output unit i and input unit j ~ U(−a, a) with a = √(3 / max(1, (fan_in_i + fan_out_j)/2)),
    where fan_in_i counts the active entries of output unit i (row i of the mask; for a conv kernel (out, in, kh,
    kw) all in·kh·kw entries of filter i) and fan_out_j those of input unit j (column j; for a conv, all
    out·kh·kw entries reading channel j), the receptive field counted as Keras's Glorot does. Inactive entries
    are set to 0. Draws |weight| uniforms from `generator`."""
    m = mask.to(weight.dtype)
    other = tuple(range(2, m.dim()))
    fan_in = m.sum(dim=(1, *other), keepdim=True)  # active inputs per output unit
    fan_out = m.sum(dim=(0, *other), keepdim=True)  # active outputs per input unit
    limit = torch.sqrt(3.0 / torch.clamp((fan_in + fan_out) / 2.0, min=1.0))
    u = torch.rand(weight.shape, generator=generator, device=weight.device, dtype=weight.dtype)
    weight.copy_((2.0 * u - 1.0) * limit * m)


@torch.no_grad()
def reset_adam_state_(
    optimizer: torch.optim.Optimizer,
    param: torch.Tensor,
    entries: torch.Tensor | None = None,
    reset_step: bool = False,
) -> None:
    """Zero Adam's moments of `param` at `entries` (a bool selection), and optionally its `step` counter
    (which restarts bias correction; the NE code does that at every topology update, `NE/STL_Scheduler.py:508-512`).
    A parameter without optimizer state yet is left alone."""
    state = optimizer.state.get(param)
    if not state:
        return
    if entries is not None:
        keep = ~entries
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"):
            buf = state.get(key)
            if isinstance(buf, torch.Tensor) and buf.shape == param.shape:
                buf.mul_(keep)
    if reset_step and isinstance(state.get("step"), torch.Tensor):
        state["step"].zero_()
