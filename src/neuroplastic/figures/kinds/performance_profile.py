"""`performance_profile`: fraction of runs with (normalised) final score > τ, per variant, with
stratified-bootstrap CI bands (rliable). Figure data: [group, tau, point, ci_low, ci_high]."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from neuroplastic.analysis import stats
from neuroplastic.figures import draw
from neuroplastic.figures.base import AggregateTables, FigureKind, NormalizedSpec, final_scores

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Taus(BaseModel):
    """τ grid: `num` points from `min` (0) to `max`; without min and max, 0 … 1.05 × the largest score."""

    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None
    num: int = Field(default=101, ge=2)


class Spec(NormalizedSpec):
    normalize: bool = True
    tau: Taus = Field(default_factory=Taus)


def compute(spec: Spec, tables: AggregateTables) -> pd.DataFrame:
    scores = final_scores(spec, tables, spec.metric, spec.normalize).scores
    tau = spec.tau
    if tau.min is not None or tau.max is not None:
        taus = np.linspace(0.0 if tau.min is None else tau.min, 2.0 if tau.max is None else tau.max, tau.num)
    else:
        taus = stats.default_taus(scores, tau.num)
    st = spec.stats
    return stats.performance_profiles(scores, taus, st.profile_reps, st.confidence, st.seed)


def render(spec: Spec, data: pd.DataFrame) -> Figure:
    plt = draw.plt()
    groups = list(pd.unique(data["group"]))
    colors = draw.colors(groups, spec.palette)
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for g in groups:
        d = data[data["group"] == g]
        ax.plot(d["tau"], d["point"], color=colors[g], label=g)
        ax.fill_between(d["tau"], d["ci_low"], d["ci_high"], color=colors[g], alpha=0.2, linewidth=0)
    ax.set_xlabel(spec.xlabel or ("normalised score τ" if spec.normalize else "score τ"))
    ax.set_ylabel(spec.ylabel or "fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="best")
    fig.tight_layout(rect=(0, 0, 1, draw.top_margin(spec.title)))
    return fig


KIND = FigureKind("performance_profile", Spec, compute, render)
