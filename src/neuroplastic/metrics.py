"""Plasticity metrics, computed at log intervals on a fixed-size replay batch (never in the update step).

- τ-dormant ratio (Sokar et al., 2023, ReDo): unit i of a hidden layer has score
  s_i = E_x|h_i(x)| / (mean_k E_x|h_k(x)| + 1e-9); it is τ-dormant iff s_i ≤ τ. The ratio is the fraction of
  dormant units over all hidden layers of a network.
- FAU, fraction of active units (the NE code's `*_FAU`, Ma et al.): the fraction of (sample, unit) entries of
  all hidden layers of a network whose post-activation output is > 0.
- density (sparse networks only): active mask entries / all entries of a network's linear weights, per network
  and per layer, counted from the masks on the device (never from the weights).
- gradient signal-to-noise ratio (Graesser et al. 2022): for every parameter entry j, SNR_j = |mean_i g_ij| /
  (std_i g_ij + 1e-10) over the per-sample gradients g_i of a loss on one minibatch (population std, as the
  study's `log_snr`), averaged over entries. Per-sample gradients come from torch.func (vmap over grad), in chunks.

Metric names are documented in `docs/metrics.md`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from neuroplastic.topology.masks import density_metrics

DORMANT_TAUS = (0.0, 0.025, 0.1)
SNR_EPS = 1e-10


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


def per_sample_gradient_snr(
    module: nn.Module,
    sample_loss: Callable[..., torch.Tensor],
    samples: tuple[torch.Tensor, ...],
    chunk: int = 64,
    eps: float = SNR_EPS,
) -> dict[str, torch.Tensor]:
    """SNR of every entry of every parameter of `module`: |mean_i g_ij| / (std_i g_ij + eps), where g_i is the
    gradient of `sample_loss(forward, *sample_i)` for sample i and std is the population std (ddof 0).

    `sample_loss(forward, *xs)` gets a callable that runs `module` with the parameters being differentiated and
    the inputs of one sample with a leading batch dimension of 1; it returns a scalar (or a tensor, summed).
    Samples are processed `chunk` at a time and only Σg and Σg² (float64) are kept, so memory stays at
    chunk × #parameters. The module itself is not modified.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}

    def one(p: dict[str, torch.Tensor], *xs: torch.Tensor) -> torch.Tensor:
        def forward(*inputs: torch.Tensor):
            return functional_call(module, p, inputs)

        return sample_loss(forward, *(x.unsqueeze(0) for x in xs)).sum()

    grads_of = vmap(grad(one), in_dims=(None, *([0] * len(samples))))
    n = samples[0].shape[0]
    total = {k: torch.zeros(v.shape, dtype=torch.float64, device=v.device) for k, v in params.items()}
    total_sq = {k: t.clone() for k, t in total.items()}
    for start in range(0, n, chunk):
        per_sample = grads_of(params, *(x[start : start + chunk] for x in samples))
        for k, g in per_sample.items():
            g = g.double()
            total[k] += g.sum(0)
            total_sq[k] += (g * g).sum(0)
    out = {}
    for k in params:
        mean = total[k] / n
        std = (total_sq[k] / n - mean * mean).clamp_min(0.0).sqrt()
        out[k] = mean.abs() / (std + eps)
    return out


def mean_snr(snr: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], entries: str = "active") -> torch.Tensor:
    """Average of per-entry SNRs over the parameters of a network.

    `masks` maps parameter names to bool masks (sparse weights). `active`: masked-out entries are not parameters
    of the sparse network and are left out; `all`: they count with SNR 0, as in the study's code, where the
    gradient of a masked entry is exactly zero.
    """
    if entries not in ("active", "all"):
        raise ValueError(f"unknown SNR entries {entries!r} (known: active, all)")
    values, count = [], 0
    for name, value in snr.items():
        mask = masks.get(name)
        if mask is None:
            values.append(value.sum())
            count += value.numel()
        elif entries == "active":
            values.append(value[mask].sum())
            count += int(mask.sum())
        else:
            values.append(value[mask].sum())
            count += value.numel()
    return torch.stack(values).sum() / max(count, 1)
