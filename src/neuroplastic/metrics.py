"""Plasticity metrics, computed at log intervals on a fixed-size replay batch (never in the update step).

- τ-dormant ratio (Sokar et al., 2023, ReDo): unit i of a hidden layer has score
  s_i = E_x|h_i(x)| / (mean_k E_x|h_k(x)| + 1e-9); it is τ-dormant iff s_i ≤ τ. The ratio is the fraction of
  dormant units over all hidden layers of a network.
- FAU, fraction of active units (the NE code's `*_FAU`, Ma et al.): the fraction of (sample, unit) entries of
  all hidden layers of a network whose post-activation output is > 0.
- density (sparse networks only): active mask entries / all entries of a network's linear weights, per network
  and per layer, counted from the masks on the device (never from the weights).

Metric names are documented in `docs/metrics.md`.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroplastic.topology.masks import density_metrics

DORMANT_TAUS = (0.0, 0.025, 0.1)


def unit_scores(h: torch.Tensor) -> torch.Tensor:
    """ReDo's normalised activation score per unit of one layer; `h` is (batch, units[, ...spatial])."""
    per_unit = h.abs().flatten(2).mean(-1) if h.dim() > 2 else h.abs()
    per_unit = per_unit.mean(0)
    return per_unit / (per_unit.mean() + 1e-9)


def dormant_ratio(layers: list[torch.Tensor], tau: float) -> torch.Tensor:
    scores = torch.cat([unit_scores(h) for h in layers])
    return (scores <= tau).float().mean()


def fau(layers: list[torch.Tensor]) -> torch.Tensor:
    active = sum((h > 0).sum() for h in layers)
    total = sum(h.numel() for h in layers)
    return active.float() / total


def plasticity(activations: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    out: dict[str, torch.Tensor] = {}
    for net, layers in activations.items():
        out[f"fau.{net}"] = fau(layers)
        for tau in DORMANT_TAUS:
            out[f"dormant.{net}.tau{tau:g}"] = dormant_ratio(layers, tau)
    values = torch.stack(list(out.values())).cpu().tolist()  # one host transfer for all of them
    return dict(zip(out, values, strict=True))


def density(nets: dict[str, nn.Module]) -> dict[str, float]:
    """`density.<net>` and `density.<net>.<layer>` for every network that has masks (empty otherwise)."""
    values = density_metrics(nets)
    if not values:
        return {}
    floats = torch.stack([v.float() for v in values.values()]).cpu().tolist()  # one host transfer
    return dict(zip(values, floats, strict=True))
