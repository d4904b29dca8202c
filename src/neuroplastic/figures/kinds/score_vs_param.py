"""`score_vs_param`: a statistic of (normalised) final scores over envs × seeds against a numeric tag of the
variants (sensitivity sweeps; sparse training: IQM vs sparsity), a line per `hue`, line style per `style`.
Figure data: [hue, style, x, group, statistic, point, ci_low, ci_high]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from neuroplastic.analysis import stats
from neuroplastic.figures import draw
from neuroplastic.figures.base import (
    AggregateTables,
    FigureKind,
    NormalizedSpec,
    Statistic,
    final_scores,
    label_of,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Spec(NormalizedSpec):
    x: str  # a numeric tag of the variants, e.g. sparsity
    hue: str = "label"  # `label` or a tag
    style: str | None = None  # a tag
    statistic: Statistic = "iqm"
    normalize: bool = True
    log_x: bool = False


def check(spec: Spec, plan: Any) -> list[str]:
    members = plan.experiment_members(spec.experiment)
    chosen = [m for m in members if not spec.labels or m.label in spec.labels]
    problems = []
    for key in ("x", "hue", "style"):
        tag = getattr(spec, key)
        if not tag or tag == "label":
            continue
        missing = sorted({m.variant for m in chosen if tag not in m.tags})
        if missing:
            problems.append(f"{key}: tag {tag!r} is missing from variants {', '.join(missing)}")
        elif key == "x" and not all(isinstance(m.tags[tag], int | float) for m in chosen):
            problems.append(f"x: tag {tag!r} must be numeric in every variant")
    return problems


def _tag(df: pd.DataFrame, variant: str, tag: str) -> Any:
    if tag == "label":
        return label_of(df, variant)
    value = df.loc[df["variant"] == variant, f"tag_{tag}"].iloc[0]
    return value.item() if hasattr(value, "item") else value


def compute(spec: Spec, tables: AggregateTables) -> pd.DataFrame:
    fs = final_scores(spec, tables, spec.metric, spec.normalize)
    st = spec.stats
    rows = []
    for v in fs.variants:
        est = stats.interval_estimates({v: fs.scores[v]}, [spec.statistic], st.reps, st.confidence, st.seed)
        rec = est.iloc[0].to_dict()
        rows.append(
            {
                "hue": str(_tag(fs.rows, v, spec.hue)),
                "style": "" if not spec.style else str(_tag(fs.rows, v, spec.style)),
                "x": float(_tag(fs.rows, v, spec.x)),
                "group": v,
                "statistic": spec.statistic,
                "point": rec["point"],
                "ci_low": rec["ci_low"],
                "ci_high": rec["ci_high"],
            }
        )
    return pd.DataFrame(rows).sort_values(["hue", "style", "x"], kind="stable").reset_index(drop=True)


def render(spec: Spec, data: pd.DataFrame) -> Figure:
    plt = draw.plt()
    hues = list(pd.unique(data["hue"]))
    styles = list(pd.unique(data["style"]))
    colors = draw.colors(hues, spec.palette)
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for h in hues:
        for si, s in enumerate(styles):
            d = data[(data["hue"] == h) & (data["style"] == s)].sort_values("x")
            if d.empty:
                continue
            name = h if not s else f"{h} ({s})"
            ls = draw.LINESTYLES[si % len(draw.LINESTYLES)]
            ax.plot(d["x"], d["point"], ls, marker="o", markersize=3, color=colors[h], label=name)
            ax.fill_between(d["x"], d["ci_low"], d["ci_high"], color=colors[h], alpha=0.15, linewidth=0)
    if spec.log_x:
        ax.set_xscale("log")
    ax.set_xlabel(spec.xlabel or spec.x)
    stat = spec.statistic.upper() if spec.statistic == "iqm" else spec.statistic
    norm = "normalised " if spec.normalize else ""
    ax.set_ylabel(spec.ylabel or f"{stat} {norm}final score")
    ax.legend(loc="best")
    fig.tight_layout(rect=(0, 0, 1, draw.top_margin(spec.title)))
    return fig


KIND = FigureKind("score_vs_param", Spec, compute, render, check=check)
