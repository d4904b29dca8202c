"""`cycling`: the continual MuJoCo figure. Return on every task over total env steps with the phase boundaries
marked (the task's own phases shaded), and activity metrics (FAU) over the same axis.

Input is the tidy `curves` table of an experiment on `env: cycling`. The runs log `eval_return.<task>` for
every task at each eval point, `cycle.phase` and `cycle.task_index` with every row, and `fau.*` at log points
(cycling.py, loop.py). Figure data has the columns of `curves` (metric, env, group, step, point, ci_low,
ci_high), in this metric order: one `eval_return.<task>` per task in cycle order, the activity metrics, then
`cycle.phase` (statistic over seeds; its jumps are the phase boundaries that `render` marks). So the data file
alone determines the drawing.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from neuroplastic.config import CYCLING_ENV_ID
from neuroplastic.figures import draw
from neuroplastic.figures.base import AggregateTables, FigureError, FigureKind, FigureSpec, curve_frame, own_curves

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ENV = CYCLING_ENV_ID
TASK_PREFIX = "eval_return."
PHASE = "cycle.phase"
DEFAULT_ACTIVITY = ["fau.critic", "fau.actor"]


class Spec(FigureSpec):
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_ACTIVITY), min_length=1)
    tasks: list[str] | None = Field(default=None, min_length=1)  # cycle order; default: read from the logs
    statistic: Literal["mean", "iqm", "median"] = "mean"


def check(spec: Spec, plan: Any) -> list[str]:
    envs = plan.config["experiments"][spec.experiment]["envs"]
    return [] if envs == [ENV] else [f"a cycling figure needs an experiment with envs [{ENV}], not {envs}"]


def task_metrics(curves: pd.DataFrame) -> list[str]:
    return sorted(m for m in pd.unique(curves["metric"]) if str(m).startswith(TASK_PREFIX))


def infer_task_order(curves: pd.DataFrame) -> list[str]:
    """Tasks in cycle order, read from the logs: at an eval point `eval_return` is a copy of the current task's
    `eval_return.<task>`, and `cycle.task_index` says which position that task has in the sequence."""
    tasks = [m[len(TASK_PREFIX) :] for m in task_metrics(curves)]
    if not tasks:
        raise FigureError("no `eval_return.<task>` metrics: these are not runs of the cycling env")
    wide = curves.pivot_table(index=["run_id", "step"], columns="metric", values="value", aggfunc="first")
    if "eval_return" not in wide or "cycle.task_index" not in wide:
        raise FigureError("the runs did not log `eval_return` and `cycle.task_index`")
    votes: dict[int, Counter] = {}
    rows = wide.dropna(subset=["eval_return", "cycle.task_index"])
    for _, row in rows.iterrows():
        match = [t for t in tasks if row.get(TASK_PREFIX + t) == row["eval_return"]]
        if len(match) == 1:
            votes.setdefault(int(row["cycle.task_index"]), Counter())[match[0]] += 1
    order: list[str] = []
    for index in sorted(votes):
        task = votes[index].most_common(1)[0][0]
        if task not in order:
            order.append(task)
    # Tasks never seen as the current one (a run shorter than one sequence) go last, alphabetically.
    return order + sorted(t for t in tasks if t not in order)


def compute(spec: Spec, tables: AggregateTables) -> pd.DataFrame:
    curves = own_curves(spec, tables)
    sel = curves[curves["env"] == ENV]
    if sel.empty:
        raise FigureError(f"experiment {spec.experiment!r} has no runs on env {ENV!r}")
    labels = spec.labels or list(dict.fromkeys(sel["label"]))
    sel = sel[sel["label"].isin(labels)]
    present = list(dict.fromkeys(sel.sort_values("label", key=lambda s: s.map(labels.index), kind="stable")["variant"]))
    variants = [v for v in spec.variant_order if v in present] + [v for v in present if v not in spec.variant_order]
    tasks = spec.tasks or infer_task_order(sel)
    logged = set(sel["metric"])
    for task in tasks:
        if TASK_PREFIX + task not in logged:
            raise FigureError(f"tasks: {task!r} has no `{TASK_PREFIX}{task}` rows in {spec.experiment!r}")
    frames = []
    for metric in [TASK_PREFIX + t for t in tasks] + spec.metrics + [PHASE]:
        if metric not in logged:
            raise FigureError(f"metric {metric!r} was not logged by the runs of {spec.experiment!r}")
        msel = sel[sel["metric"] == metric]
        for v in variants:
            cell = msel[msel["variant"] == v]
            if not cell.empty:
                frames.append(curve_frame(cell, metric, ENV, v, spec.statistic, spec.stats))
    return pd.concat(frames, ignore_index=True)


def phases(data: pd.DataFrame) -> list[tuple[int, float, float]]:
    """(phase, first step, last step) from the `cycle.phase` curve of the first group. A boundary is drawn at
    the last logged step of a phase, which is exact when the log interval divides `phase_steps`."""
    curve = data[data["metric"] == PHASE]
    if curve.empty:
        raise FigureError(f"figure data has no {PHASE!r} rows")
    first = curve[curve["group"] == curve["group"].iloc[0]].sort_values("step")
    steps = first["step"].to_numpy(dtype=np.float64)
    index = np.floor(first["point"].to_numpy(dtype=np.float64) + 1e-9).astype(int)
    out = []
    start = 0.0
    for i in range(len(steps)):
        if i == len(steps) - 1 or index[i + 1] != index[i]:
            out.append((int(index[i]), start, float(steps[i])))
            start = float(steps[i])
    return out


def render(spec: Spec, data: pd.DataFrame) -> Figure:
    """Top row: return on each task (shaded where that task is trained); bottom row: activity metrics."""
    plt = draw.plt()
    metrics = list(pd.unique(data["metric"]))
    task_metrics_ = [m for m in metrics if m.startswith(TASK_PREFIX)]
    tasks = [m[len(TASK_PREFIX) :] for m in task_metrics_]
    activity = [m for m in metrics if m not in task_metrics_ and m != PHASE]
    groups = list(pd.unique(data["group"]))
    colors = draw.colors(groups, spec.palette)
    spans = phases(data)
    boundaries = [end for _, _, end in spans[:-1]]
    max_step = float(data["step"].max())
    scale, xlabel = draw.step_axis(max_step, "total env steps")

    n_top, n_bottom = len(tasks), max(1, len(activity))
    cols = n_top * n_bottom  # every top panel spans n_bottom grid columns, every bottom panel n_top
    fig = plt.figure(figsize=(2.6 * n_top, 4.9))
    grid = fig.add_gridspec(2, cols)
    handles: dict[str, Any] = {}

    def plot(ax, metric: str) -> None:
        for g in groups:
            d = data[(data["metric"] == metric) & (data["group"] == g)]
            if d.empty:
                continue
            x = d["step"].to_numpy(dtype=np.float64) / scale
            (line,) = ax.plot(x, d["point"], color=colors[g], label=g)
            ax.fill_between(x, d["ci_low"], d["ci_high"], color=colors[g], alpha=0.2, linewidth=0)
            handles.setdefault(g, line)
        for b in boundaries:
            ax.axvline(b / scale, color="grey", linestyle="--", linewidth=0.7)
        ax.set_xlim(0, max_step / scale)

    for k, task in enumerate(tasks):
        ax = fig.add_subplot(grid[0, k * n_bottom : (k + 1) * n_bottom])
        for phase, start, end in spans:
            if phase % len(tasks) == k:
                ax.axvspan(start / scale, end / scale, color="0.85", alpha=0.6, linewidth=0)
        plot(ax, TASK_PREFIX + task)
        ax.set_title(task)
        if k == 0:
            ax.set_ylabel(spec.ylabel or "evaluation return")
    for j, metric in enumerate(activity):
        ax = fig.add_subplot(grid[1, j * n_top : (j + 1) * n_top])
        plot(ax, metric)
        ax.set_ylabel(metric)
        ax.set_xlabel(spec.xlabel or xlabel)
        top = ax.secondary_xaxis("top")
        top.set_xticks(
            [(s + e) / 2 / scale for _, s, e in spans], [tasks[p % len(tasks)].split("-")[0] for p, _, _ in spans]
        )
        top.tick_params(length=0, labelsize=6)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 6))
    fig.tight_layout(rect=(0, 0.07, 1, 0.95 if spec.title else 1))
    return fig


KIND = FigureKind("cycling", Spec, compute, render, check=check)
