"""`reference_gap_table`: at every checkpoint of each published reference (`neuroplastic.reference`), our mean
(bootstrap CI over seeds, at our last logged step ≤ the checkpoint), theirs (mean ± std across their seeds), and
the gap (ours − theirs) in units of their std. A checkpoint beyond our runs is listed as not reached (with the
step our runs end at); a reference
without a published std has no gap. The protocol column says how the reference was measured and where that
differs from us. Figure data: [env, group, reference, step, ours_step, ours_last_step, ours_mean, ours_ci_low,
ours_ci_high, seeds, ref_mean, ref_std, ref_seeds, gap_std, protocol]."""

from __future__ import annotations

import math

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
)


class Spec(FigureSpec):
    metric: str = "eval_return"
    references: list[str] = Field(min_length=1, description="reference sources (src/neuroplastic/data/reference)")
    checkpoints: list[int] | None = Field(None, description="only these reference steps (default: all)")


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
                            "ref_mean": float(p.mean),
                            "ref_std": float(p.std),
                            "ref_seeds": int(p.n_seeds),
                            "gap_std": gap,
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


def render(spec: Spec, data: pd.DataFrame) -> tables.Table:
    data = numeric(data, NUMERIC)
    return tables.Table(
        head=[
            "env",
            "ours",
            "reference",
            "step",
            "ours: mean [95% CI]",
            "reference: mean ± std",
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
                _theirs(r),
                "–" if math.isnan(r.gap_std) else f"{r.gap_std:+.2f}",
                r.protocol,
            ]
            for r in data.itertuples()
        ],
        caption=(
            f"Our {spec.metric} (at our last evaluation ≤ each reference checkpoint) next to published references; "
            "gap = (ours − reference) / reference std across seeds"
        ),
        align="lllrrrrl",
    )


KIND = FigureKind("reference_gap_table", Spec, compute, render, table=True, check=check)
