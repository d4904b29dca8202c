"""`aggregate_intervals`: IQM / mean / median / optimality gap of (normalised) final scores over envs × seeds,
per variant, with stratified-bootstrap CIs (rliable). Figure data: [group, statistic, point, ci_low, ci_high,
runs, tasks]."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from pydantic import Field

from neuroplastic.analysis import stats
from neuroplastic.figures import draw
from neuroplastic.figures.base import AggregateTables, FigureKind, NormalizedSpec, Statistic, final_scores

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Spec(NormalizedSpec):
    normalize: bool = True
    statistics: list[Statistic] = Field(default_factory=lambda: list(stats.STATISTICS), min_length=1)


def compute(spec: Spec, tables: AggregateTables) -> pd.DataFrame:
    fs = final_scores(spec, tables, spec.metric, spec.normalize)
    st = spec.stats
    return stats.interval_estimates(fs.scores, spec.statistics, st.reps, st.confidence, st.seed)


def render(spec: Spec, data: pd.DataFrame) -> Figure:
    plt = draw.plt()
    statistics = list(pd.unique(data["statistic"]))
    groups = list(pd.unique(data["group"]))
    colors = draw.colors(groups, spec.palette)
    fig, axes = plt.subplots(
        1, len(statistics), figsize=(2.2 * len(statistics) + 0.8, 0.35 * len(groups) + 1.0), squeeze=False
    )
    for c, stat in enumerate(statistics):
        ax = axes[0][c]
        d = data[data["statistic"] == stat].set_index("group").reindex(groups)
        for i, g in enumerate(groups):
            ax.barh(
                i,
                d.loc[g, "ci_high"] - d.loc[g, "ci_low"],
                left=d.loc[g, "ci_low"],
                height=0.6,
                color=colors[g],
                alpha=0.75,
            )
            ax.vlines(d.loc[g, "point"], i - 0.3, i + 0.3, color="black", linewidth=1.2)
        ax.set_yticks(range(len(groups)), groups if c == 0 else [""] * len(groups))
        ax.set_title(draw.STATISTIC_NAMES.get(stat, stat))
        ax.invert_yaxis()
    fig.supxlabel(spec.xlabel or ("normalised score" if spec.normalize else spec.metric), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, draw.top_margin(spec.title)))
    return fig


KIND = FigureKind("aggregate_intervals", Spec, compute, render)
