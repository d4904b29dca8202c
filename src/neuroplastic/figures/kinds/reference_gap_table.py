"""`reference_gap_table`: at every checkpoint of each published reference (`neuroplastic.reference`), our mean
(bootstrap CI over seeds, at our last logged step ≤ the checkpoint) and our seeds' values, theirs (mean ± std across
their seeds), and the gap (ours − theirs) in units of their std. For a per-seed reference (the TD3 authors' 10
curves) the row also gives their median, interquartile range and min-max range, and says where our mean lies:
`below` their lowest seed, `inside` the range, or `above` their highest seed, and how many of our seeds lie below
or above it. A checkpoint beyond our runs is listed as not reached (with the step our runs end at); a reference
without a published std has no gap. The protocol column says how the reference was measured and where that
differs from us. Figure data: [env, group, reference, step, ours_step, ours_last_step, ours_mean, ours_ci_low,
ours_ci_high, seeds, ours_seeds, ref_mean, ref_std, ref_seeds, gap_std, ref_median, ref_q25, ref_q75, ref_min,
ref_max, position, seeds_below, seeds_above, protocol]; the per-seed columns are empty for other references."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from neuroplastic import reference
from neuroplastic.figures import tables
from neuroplastic.figures.base import (
    AggregateTables,
    FigureError,
    FigureKind,
    FigureSpec,
    check_metric,
    curve_frame,
    own_curves,
    selection,
)
from neuroplastic.figures.kinds._visual import fmt, numeric
from neuroplastic.figures.kinds.reference_curves import check

NUMERIC = (
    "step",
    "ours_step",
    "ours_last_step",
    "ours_mean",
    "ours_ci_low",
    "ours_ci_high",
    "seeds",
    "ref_mean",
    "ref_std",
    "ref_seeds",
    "gap_std",
    "ref_median",
    "ref_q25",
    "ref_q75",
    "ref_min",
    "ref_max",
    "seeds_below",
    "seeds_above",
)
BAND_COLUMNS = ("median", "q25", "q75", "min", "max")


class Spec(FigureSpec):
    metric: str = "eval_return"
    references: list[str] = Field(min_length=1, description="reference sources (src/neuroplastic/data/reference)")
    checkpoints: list[int] | None = Field(None, description="only these reference steps (default: all)")


def position(value: float, low: float, high: float) -> str:
    """Where `value` lies against the range [low, high]: `below`, `inside` or `above` (empty when unknown)."""
    if math.isnan(value) or math.isnan(low):
        return ""
    return "below" if value < low else "above" if value > high else "inside"


def _band_columns(name: str, env: str, step: int, seed_values: np.ndarray, mean: float) -> dict[str, Any]:
    """The per-seed reference's median, IQR and range at `step`, and where our mean and seeds lie against it."""
    nan = dict.fromkeys(("ref_median", "ref_q25", "ref_q75", "ref_min", "ref_max"), math.nan)
    empty = {**nan, "position": "", "seeds_below": math.nan, "seeds_above": math.nan}
    if reference.source(name).kind != "seeds":
        return empty
    b = reference.band(name, env).set_index("step")
    if step not in b.index:
        return empty
    r = b.loc[step]
    out = {f"ref_{c}": float(r[c]) for c in BAND_COLUMNS}
    reached = not math.isnan(mean)
    return {
        **out,
        "position": position(mean, out["ref_min"], out["ref_max"]),
        "seeds_below": int((seed_values < out["ref_min"]).sum()) if reached else math.nan,
        "seeds_above": int((seed_values > out["ref_max"]).sum()) if reached else math.nan,
    }


def compute(spec: Spec, tables_: AggregateTables) -> pd.DataFrame:
    variants, envs, sel = selection(spec, own_curves(spec, tables_))
    check_metric(sel, spec.metric, spec.experiment)
    sel = sel[sel["metric"] == spec.metric]
    rows = []
    for env in envs:
        for v in variants:
            cell = sel[(sel["variant"] == v) & (sel["env"] == env)]
            if cell.empty:
                continue
            ours = curve_frame(cell, spec.metric, env, v, "mean", spec.stats).set_index("step")
            seeds = int(cell["seed"].nunique())
            for name in spec.references:
                pts = reference.points(name, env)
                if spec.checkpoints is not None:
                    pts = pts[pts["step"].isin(spec.checkpoints)]
                protocol = "; ".join(reference.protocol_notes(name, env))
                for p in pts.itertuples():
                    logged = ours.index[ours.index <= p.step]
                    reached = p.step <= ours.index.max()
                    at = int(logged.max()) if reached and len(logged) else None
                    row = ours.loc[at] if at is not None else None
                    mean = float(row["point"]) if row is not None else math.nan
                    gap = (mean - p.mean) / p.std if p.std and not math.isnan(p.std) else math.nan
                    at_step = cell[cell["step"] == at].sort_values("seed")
                    seed_values = at_step["value"].to_numpy(dtype=np.float64)
                    rows.append(
                        {
                            "env": env,
                            "group": v,
                            "reference": reference.source(name).label,
                            "step": int(p.step),
                            "ours_step": at if at is not None else math.nan,
                            "ours_last_step": int(ours.index.max()),
                            "ours_mean": mean,
                            "ours_ci_low": float(row["ci_low"]) if row is not None else math.nan,
                            "ours_ci_high": float(row["ci_high"]) if row is not None else math.nan,
                            "seeds": seeds,
                            "ours_seeds": " / ".join(f"{x:.1f}" for x in seed_values),
                            "ref_mean": float(p.mean),
                            "ref_std": float(p.std),
                            "ref_seeds": int(p.n_seeds),
                            "gap_std": gap,
                            **_band_columns(name, env, int(p.step), seed_values, mean),
                            "protocol": protocol,
                        }
                    )
    if not rows:
        raise FigureError(f"reference_gap_table: no reference covers the envs of experiment {spec.experiment!r}")
    return pd.DataFrame(rows)


def _ours(r) -> str:
    if math.isnan(r.ours_mean):
        return f"not reached (ours end at step {r.ours_last_step:,.0f})"
    nd = tables.decimals(np.array([r.ours_mean]))
    return f"{r.ours_mean:.{nd}f} [{r.ours_ci_low:.{nd}f}, {r.ours_ci_high:.{nd}f}] ({int(r.seeds)} seeds)"


def _theirs(r) -> str:
    std = "" if math.isnan(r.ref_std) else f" ± {r.ref_std:.0f}"
    return f"{r.ref_mean:.0f}{std} ({int(r.ref_seeds)} seeds)"


def _band(r) -> str:
    if math.isnan(r.ref_median):
        return "–"
    return f"{r.ref_median:.0f} [{r.ref_q25:.0f}, {r.ref_q75:.0f}] ({r.ref_min:.0f}–{r.ref_max:.0f})"


def _position(r) -> str:
    if not isinstance(r.position, str) or not r.position:
        return "–"
    n = int(r.seeds)
    return f"{r.position} (seeds below {int(r.seeds_below)}/{n}, above {int(r.seeds_above)}/{n})"


def _seeds(r) -> str:
    return r.ours_seeds if isinstance(r.ours_seeds, str) and r.ours_seeds else "–"


def render(spec: Spec, data: pd.DataFrame) -> tables.Table:
    data = numeric(data, NUMERIC)
    return tables.Table(
        head=[
            "env",
            "ours",
            "reference",
            "step",
            "ours: mean [95% CI]",
            "ours: seeds",
            "reference: mean ± std",
            "reference: median [IQR] (range)",
            "ours vs range",
            "gap (σ)",
            "protocol",
        ],
        rows=[
            [
                r.env,
                r.group,
                r.reference,
                fmt(r.step),
                _ours(r),
                _seeds(r),
                _theirs(r),
                _band(r),
                _position(r),
                "–" if math.isnan(r.gap_std) else f"{r.gap_std:+.2f}",
                r.protocol,
            ]
            for r in data.itertuples()
        ],
        caption=(
            f"Our {spec.metric} (at our last evaluation ≤ each reference checkpoint) next to published references; "
            "gap = (ours − reference) / reference std across seeds; for per-seed references, where our mean lies "
            "against their min-max range over seeds (below / inside / above)"
        ),
        align="lllrrlrrlrl",
    )


KIND = FigureKind("reference_gap_table", Spec, compute, render, table=True, check=check)
