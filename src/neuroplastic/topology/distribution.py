"""Layer-wise sparsity distributions at a global sparsity: ERK (Erdős–Rényi-Kernel) and uniform.

Both take the shapes of every weight tensor that counts towards the budget (a dict name → shape; 1-D tensors
such as LayerNorm weights may be included, as the NE code does) and return one sparsity per name. The global
sparsity holds over the *whole* budget: layers forced dense (`dense`) or solved dense keep all their entries,
and the sparse layers absorb the rest.

ERK (Evci et al. 2020, RigL; the NE code's `sparse_set`, `NE/STL_Scheduler.py:16-84`): layer l gets density ε·r_l with
r_l = (Σ shape_l / Π shape_l)^power. A layer whose density would exceed 1 becomes dense and ε is re-solved,
iteratively, until every density is ≤ 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _check(shapes: Mapping[str, tuple[int, ...]], sparsity: float, dense: Iterable[str]) -> set[str]:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"global sparsity must be in [0, 1), got {sparsity}")
    dense = set(dense)
    unknown = dense - set(shapes)
    if unknown:
        raise KeyError(f"dense layers {sorted(unknown)} are not in the budget {sorted(shapes)}")
    return dense


def erk_sparsities(
    shapes: Mapping[str, tuple[int, ...]],
    sparsity: float,
    dense: Iterable[str] = (),
    power: float = 1.0,
) -> dict[str, float]:
    """ERK sparsity per layer so that Σ_l S_l·N_l = sparsity·Σ_l N_l. Dense layers get 0.0.

    Raises ValueError when the forced-dense layers alone exceed the global density budget.
    """
    dense = _check(shapes, sparsity, dense)
    density = 1.0 - sparsity
    raw = {name: (sum(shape) / _numel(shape)) ** power for name, shape in shapes.items()}
    while True:
        # Budget of non-zeros left for the sparse layers once the dense ones are paid for in full.
        rhs, divisor = 0.0, 0.0
        for name, shape in shapes.items():
            n = _numel(shape)
            if name in dense:
                rhs -= n * sparsity
            else:
                rhs += n * density
                divisor += raw[name] * n
        if divisor == 0.0:
            break
        if rhs <= 0.0:
            raise ValueError(f"dense layers {sorted(dense)} leave no budget for global sparsity {sparsity}")
        epsilon = rhs / divisor
        over = [name for name in shapes if name not in dense and raw[name] * epsilon > 1.0]
        if not over:
            break
        # Only the layers at the largest ratio are made dense per round (RigL's rule); the rest re-solve.
        top = max(raw[name] for name in over)
        dense |= {name for name in over if raw[name] == top}
    return {name: 0.0 if name in dense else 1.0 - epsilon * raw[name] for name in shapes}


def uniform_sparsities(
    shapes: Mapping[str, tuple[int, ...]], sparsity: float, dense: Iterable[str] = ()
) -> dict[str, float]:
    """The same sparsity for every non-dense layer, raised so the global sparsity holds over the whole budget."""
    dense = _check(shapes, sparsity, dense)
    total = sum(_numel(s) for s in shapes.values())
    sparse_numel = sum(_numel(s) for name, s in shapes.items() if name not in dense)
    if sparse_numel == 0:
        return dict.fromkeys(shapes, 0.0)
    layer_sparsity = sparsity * total / sparse_numel
    if layer_sparsity >= 1.0:
        raise ValueError(f"dense layers {sorted(dense)} leave no budget for global sparsity {sparsity}")
    return {name: 0.0 if name in dense else layer_sparsity for name in shapes}


DISTRIBUTIONS = {"erk": erk_sparsities, "uniform": uniform_sparsities}


def layer_sparsities(
    kind: str, shapes: Mapping[str, tuple[int, ...]], sparsity: float, dense: Iterable[str] = ()
) -> dict[str, float]:
    """Dispatch on `kind` ("erk" | "uniform")."""
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"unknown sparsity distribution {kind!r} (known: {', '.join(DISTRIBUTIONS)})")
    return DISTRIBUTIONS[kind](shapes, sparsity, dense)
