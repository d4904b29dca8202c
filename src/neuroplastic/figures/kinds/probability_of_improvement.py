"""`probability_of_improvement`: P(target > other) for every other variant (Mann-Whitney per env, averaged;
rliable), with stratified-bootstrap CIs, on raw final scores. Figure data: [group, other, point, ci_low,
ci_high]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from neuroplastic.analysis import stats
from neuroplastic.figures import draw
from neuroplastic.figures.base import AggregateTables, FigureError, FigureKind, FigureSpec, final_scores, label_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Spec(FigureSpec):
    target: str  # the label compared against the others
    metric: str = "eval_return"


def check(spec: Spec, plan: Any) -> list[str]:
    labels = spec.labels or list(dict.fromkeys(m.label for m in plan.experiment_members(spec.experiment)))
    return [] if spec.target in labels else [f"target {spec.target!r} is not among the figure's labels"]


def compute(spec: Spec, tables: AggregateTables) -> pd.DataFrame:
    fs = final_scores(spec, tables, spec.metric)
    targets = [v for v in fs.variants if label_of(fs.rows, v) == spec.target]
    if len(targets) != 1:
        raise FigureError(f"target {spec.target!r} must be exactly one variant, found {targets}")
    st = spec.stats
    return stats.probability_of_improvement(fs.scores, targets[0], st.reps, st.confidence, st.seed)


def render(spec: Spec, data: pd.DataFrame) -> Figure:
    plt = draw.plt()
    others = list(data["other"])
    target = str(data["group"].iloc[0]) if len(data) else spec.target
    colors = draw.colors([target, *others], spec.palette)
    fig, ax = plt.subplots(figsize=(4.2, 0.35 * len(others) + 1.0))
    for i, row in enumerate(data.itertuples()):
        ax.barh(i, row.ci_high - row.ci_low, left=row.ci_low, height=0.6, color=colors[row.other], alpha=0.75)
        ax.vlines(row.point, i - 0.3, i + 0.3, color="black", linewidth=1.2)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(others)), [f"{target} vs {o}" for o in others])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(spec.xlabel or f"P({target} > Y)")
    fig.tight_layout(rect=(0, 0, 1, draw.top_margin(spec.title)))
    return fig


KIND = FigureKind("probability_of_improvement", Spec, compute, render, check=check)
