"""Statistics on final scores and curves, with rliable (Agarwal et al., 2021).

Score matrices follow rliable's convention: for each label an array of shape (runs, tasks) (tasks = envs), or
(runs, tasks, points) for curves. Every rliable call goes through `_seeded`, which calls `np.random.seed(seed)`
right before it: rliable's stratified bootstrap draws from numpy's global RNG, so `random_state=` alone does not
make CIs reproducible (see shared/notes/environment.md). Each label (or label pair) gets its own call with the
same seed, so a label's interval does not depend on which other labels share the figure.

Normalisation: a score is divided by the reference label's mean final score on the same env (TD3 by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

STATISTICS = ("iqm", "mean", "median", "optimality_gap")


class StatsError(ValueError):
    pass


def _rliable():
    from rliable import library as rly
    from rliable import metrics

    return rly, metrics


def _trim_mean(x: np.ndarray, proportion: float, axis: int) -> np.ndarray:
    # scipy.stats costs ~1 s to import; only the bootstrap paths (which load rliable, and scipy with it) need it,
    # so rendering a figure or table does not.
    from scipy.stats import trim_mean

    return trim_mean(x, proportion, axis=axis)


def _seeded(seed: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    np.random.seed(seed)
    return fn(*args, **kwargs)


def aggregate_fn(statistic: str) -> Callable[[np.ndarray], float]:
    _, metrics = _rliable()
    fns = {
        "iqm": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "optimality_gap": metrics.aggregate_optimality_gap,
    }
    if statistic not in fns:
        raise StatsError(f"unknown statistic {statistic!r} (known: {', '.join(STATISTICS)})")
    return fns[statistic]


# ---------------------------------------------------------------------------------------------------------------
# building score matrices from the tidy final table


def score_matrices(
    final: pd.DataFrame, groups: Sequence[str], envs: Sequence[str], metric: str, group_col: str = "variant"
) -> dict[str, np.ndarray]:
    """`final` rows (variant, env, seed, metric, value) → {group: (runs, tasks)} with seeds sorted per env.

    Every group must have the same number of seeds on every env: the matrix is never filled with fewer runs.
    """
    sub = final[final["metric"] == metric]
    out: dict[str, np.ndarray] = {}
    for g in groups:
        cols = []
        for env in envs:
            cell = sub[(sub[group_col] == g) & (sub["env"] == env)].sort_values("seed")
            if cell.empty:
                raise StatsError(f"no {metric!r} scores for {group_col} {g!r} on env {env!r}")
            cols.append(cell["value"].to_numpy(dtype=np.float64))
        lengths = {len(c) for c in cols}
        if len(lengths) != 1:
            raise StatsError(f"{group_col} {g!r}: different numbers of seeds per env ({sorted(lengths)})")
        out[g] = np.stack(cols, axis=1)
    return out


def reference_means(final: pd.DataFrame, label: str, envs: Sequence[str], metric: str) -> dict[str, float]:
    """Mean final score of the reference label per env (the normaliser)."""
    sub = final[(final["metric"] == metric) & (final["label"] == label)]
    out = {}
    for env in envs:
        vals = sub[sub["env"] == env]["value"].to_numpy(dtype=np.float64)
        if len(vals) == 0:
            raise StatsError(f"reference {label!r} has no {metric!r} scores on env {env!r}")
        mean = float(vals.mean())
        if not np.isfinite(mean) or mean <= 0:
            raise StatsError(
                f"reference {label!r} has mean final {metric} {mean:.4g} on env {env!r}; "
                "normalising by a non-positive score is meaningless (choose another reference or normalize: false)"
            )
        out[env] = mean
    return out


def normalise(scores: dict[str, np.ndarray], ref: dict[str, float], envs: Sequence[str]) -> dict[str, np.ndarray]:
    denom = np.array([ref[e] for e in envs], dtype=np.float64)
    return {k: v / denom.reshape((1, -1) + (1,) * (v.ndim - 2)) for k, v in scores.items()}


# ---------------------------------------------------------------------------------------------------------------
# interval estimates


def interval_estimates(
    scores: dict[str, np.ndarray],
    statistics: Sequence[str],
    reps: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Point estimate and stratified-bootstrap CI of each statistic, per label. Long table."""
    rly, _ = _rliable()
    fns = [aggregate_fn(s) for s in statistics]

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([f(x) for f in fns])

    rows = []
    for label, x in scores.items():
        point, ci = _seeded(
            seed, rly.get_interval_estimates, {label: x}, func, reps=reps, confidence_interval_size=confidence
        )
        for i, stat in enumerate(statistics):
            rows.append(
                {
                    "group": label,
                    "statistic": stat,
                    "point": float(point[label][i]),
                    "ci_low": float(ci[label][0, i]),
                    "ci_high": float(ci[label][1, i]),
                    "runs": int(x.shape[0]),
                    "tasks": int(x.shape[1]),
                }
            )
    return pd.DataFrame(rows)


def curve_estimates(
    curves: dict[str, np.ndarray], statistic: str, reps: int, confidence: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-point statistic over runs×tasks for (runs, tasks, T) arrays → {label: (point (T,), ci (2, T))}."""
    rly, _ = _rliable()

    def func(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(-1, x.shape[-1])
        if statistic == "mean":
            return flat.mean(axis=0)
        if statistic == "iqm":
            return _trim_mean(flat, 0.25, axis=0)
        if statistic == "median":
            return np.median(flat, axis=0)
        raise StatsError(f"curves support mean, iqm, median; got {statistic!r}")

    out = {}
    for label, x in curves.items():
        point, ci = _seeded(
            seed, rly.get_interval_estimates, {label: x}, func, reps=reps, confidence_interval_size=confidence
        )
        out[label] = (np.asarray(point[label]), np.asarray(ci[label]))
    return out


def performance_profiles(
    scores: dict[str, np.ndarray], taus: np.ndarray, reps: int, confidence: float, seed: int
) -> pd.DataFrame:
    """Fraction of runs with score > τ, with stratified-bootstrap CIs; long table (group, tau, point, lo, hi)."""
    rly, _ = _rliable()
    rows = []
    for label, x in scores.items():
        profiles, cis = _seeded(
            seed,
            rly.create_performance_profile,
            {label: x},
            taus,
            reps=reps,
            confidence_interval_size=confidence,
        )
        for j, tau in enumerate(taus):
            rows.append(
                {
                    "group": label,
                    "tau": float(tau),
                    "point": float(profiles[label][j]),
                    "ci_low": float(cis[label][0, j]),
                    "ci_high": float(cis[label][1, j]),
                }
            )
    return pd.DataFrame(rows)


def probability_of_improvement(
    scores: dict[str, np.ndarray], target: str, reps: int, confidence: float, seed: int
) -> pd.DataFrame:
    """P(target > other) for every other label (Mann-Whitney per task, averaged), with CIs."""
    rly, metrics = _rliable()
    if target not in scores:
        raise StatsError(f"target {target!r} is not one of {sorted(scores)}")
    rows = []
    for other, y in scores.items():
        if other == target:
            continue
        key = f"{target},{other}"
        point, ci = _seeded(
            seed,
            rly.get_interval_estimates,
            {key: (scores[target], y)},
            metrics.probability_of_improvement,
            reps=reps,
            confidence_interval_size=confidence,
        )
        rows.append(
            {
                "group": target,
                "other": other,
                "point": float(np.asarray(point[key]).reshape(-1)[0]),
                "ci_low": float(np.asarray(ci[key]).reshape(-1)[0]),
                "ci_high": float(np.asarray(ci[key]).reshape(-1)[1]),
            }
        )
    return pd.DataFrame(rows)


def default_taus(scores: dict[str, np.ndarray], num: int = 101) -> np.ndarray:
    """0 … 1.05 × the largest score (at least 1): covers every profile from 1 down to 0."""
    top = max(float(np.max(v)) for v in scores.values())
    return np.linspace(0.0, max(1.0, 1.05 * top), num)
