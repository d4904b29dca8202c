"""`curves`: metric(s) vs env steps, one panel per metric × env, a line per variant with a bootstrap CI band of
the statistic over seeds. Any logged metric (`fau.critic`, `dormant.critic.tau0.025`, `density.critic`,
`review.threshold`, see docs/metrics.md); variants that do not log a metric are left out of its panels. Figure
data: [metric, env, group, step, point, ci_low, ci_high]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import Field

from neuroplastic.figures import draw
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

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Spec(FigureSpec):
    metrics: list[str] = Field(default_factory=lambda: ["eval_return"], min_length=1)
    statistic: Literal["mean", "iqm", "median"] = "mean"


def compute(spec: Spec, tables: AggregateTables) -> pd.DataFrame:
    variants, envs, sel = selection(spec, own_curves(spec, tables))
    frames = []
    for metric in spec.metrics:
        check_metric(sel, metric, spec.experiment)
        msel = sel[sel["metric"] == metric]
        for env in envs:
            for v in variants:
                cell = msel[(msel["variant"] == v) & (msel["env"] == env)]
                if cell.empty:
                    continue  # e.g. a method-specific metric (density) that other variants do not log
                frames.append(curve_frame(cell, metric, env, v, spec.statistic, spec.stats))
    if not frames:
        raise FigureError(f"no data for metrics {spec.metrics} in experiment {spec.experiment!r}")
    return pd.concat(frames, ignore_index=True)


def render(spec: Spec, data: pd.DataFrame) -> Figure:
    plt = draw.plt()
    metrics = list(pd.unique(data["metric"]))
    envs = list(pd.unique(data["env"]))
    groups = list(pd.unique(data["group"]))
    colors = draw.colors(groups, spec.palette)
    scale, xlabel = draw.step_axis(float(data["step"].max()))
    fig, axes = plt.subplots(
        len(metrics), len(envs), figsize=(3.0 * len(envs), 2.3 * len(metrics) + 0.5), squeeze=False
    )
    handles: dict[str, Any] = {}
    for r, metric in enumerate(metrics):
        for c, env in enumerate(envs):
            ax = axes[r][c]
            cell = data[(data["metric"] == metric) & (data["env"] == env)]
            for g in groups:
                d = cell[cell["group"] == g]
                if d.empty:
                    continue
                x = d["step"].to_numpy() / scale
                (line,) = ax.plot(x, d["point"], color=colors[g], label=g)
                ax.fill_between(x, d["ci_low"], d["ci_high"], color=colors[g], alpha=0.2, linewidth=0)
                handles.setdefault(g, line)
            if r == 0:
                ax.set_title(env)
            if c == 0:
                ax.set_ylabel(spec.ylabel if spec.ylabel and len(metrics) == 1 else metric)
            if r == len(metrics) - 1:
                ax.set_xlabel(spec.xlabel or xlabel)
    draw.legend(fig, list(handles.values()), list(handles), len(handles))
    fig.tight_layout(rect=(0, 0.08 if len(metrics) == 1 else 0.05, 1, 0.95 if spec.title else 1))
    return fig


KIND = FigureKind("curves", Spec, compute, render)
