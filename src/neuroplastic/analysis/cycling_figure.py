"""The cycling figure (figure kind `cycling`): per-task return over total env steps, phase boundaries marked,
and the activated-neuron ratio (FAU) over the same axis.

Input is the workflow's tidy `curves` table of an experiment on `env: cycling` (columns label, variant, env,
seed, run_id, step, metric, value). The runs log `eval_return.<task>` for every task at each eval point,
`cycle.phase` and `cycle.task_index` with every row, and `fau.*` at log points (cycling.py, loop.py).

Figure data has the columns of the `curves` kind (metric, env, group, step, point, ci_low, ci_high), in this
metric order: one `eval_return.<task>` per task in cycle order, the activity metrics, then `cycle.phase`
(mean over seeds; its jumps are the phase boundaries that `draw` marks). So the data file alone determines the
drawing. `compute` takes the workflow's curve estimator (`analysis.stats.curve_estimates`: a statistic over
seeds with a seeded bootstrap CI); `bootstrap_mean_ci` is a numpy stand-in with the same signature.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from neuroplastic.config import CYCLING_ENV_ID

ENV = CYCLING_ENV_ID
TASK_PREFIX = "eval_return."
PHASE = "cycle.phase"
DEFAULT_ACTIVITY = ("fau.critic", "fau.actor")
SPEC_KEYS = {"metrics", "statistic", "tasks"}

CurveEstimator = Callable[[dict[str, np.ndarray], str, int, float, int], dict[str, tuple[np.ndarray, np.ndarray]]]


class CyclingFigureError(ValueError):
    pass


def bootstrap_mean_ci(
    curves: dict[str, np.ndarray], statistic: str, reps: int, confidence: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean over runs of (runs, tasks, T) arrays with a percentile bootstrap CI over runs (seeded)."""
    if statistic != "mean":
        raise CyclingFigureError(f"bootstrap_mean_ci computes the mean only, not {statistic!r}")
    out = {}
    for label, x in curves.items():
        flat = x.reshape(-1, x.shape[-1])
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, flat.shape[0], size=(reps, flat.shape[0]))
        boot = flat[idx].mean(axis=1)
        alpha = (1 - confidence) / 2
        ci = np.quantile(boot, [alpha, 1 - alpha], axis=0)
        out[label] = (flat.mean(axis=0), ci)
    return out


def task_metrics(curves: pd.DataFrame) -> list[str]:
    return sorted(m for m in pd.unique(curves["metric"]) if str(m).startswith(TASK_PREFIX))


def infer_task_order(curves: pd.DataFrame) -> list[str]:
    """Tasks in cycle order, read from the logs: at an eval point `eval_return` is a copy of the current task's
    `eval_return.<task>`, and `cycle.task_index` says which position that task has in the sequence."""
    tasks = [m[len(TASK_PREFIX) :] for m in task_metrics(curves)]
    if not tasks:
        raise CyclingFigureError("no `eval_return.<task>` metrics: these are not runs of the cycling env")
    wide = curves.pivot_table(index=["run_id", "step"], columns="metric", values="value", aggfunc="first")
    if "eval_return" not in wide or "cycle.task_index" not in wide:
        raise CyclingFigureError("the runs did not log `eval_return` and `cycle.task_index`")
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


def compute(spec: dict[str, Any], curves: pd.DataFrame, st: dict[str, Any], estimate: CurveEstimator) -> pd.DataFrame:
    """Figure data (see the module docstring) from an experiment's curves table."""
    sel = curves[curves["env"] == ENV]
    if sel.empty:
        raise CyclingFigureError(f"experiment {spec['experiment']!r} has no runs on env {ENV!r}")
    labels = spec.get("labels") or list(dict.fromkeys(sel["label"]))
    sel = sel[sel["label"].isin(labels)]
    declared = list(spec.get("variant_order") or [])
    present = list(dict.fromkeys(sel.sort_values("label", key=lambda s: s.map(labels.index), kind="stable")["variant"]))
    variants = [v for v in declared if v in present] + [v for v in present if v not in declared]
    tasks = list(spec.get("tasks") or infer_task_order(sel))
    logged = set(sel["metric"])
    for task in tasks:
        if TASK_PREFIX + task not in logged:
            raise CyclingFigureError(f"tasks: {task!r} has no `{TASK_PREFIX}{task}` rows in {spec['experiment']!r}")
    metrics = [TASK_PREFIX + t for t in tasks] + list(spec.get("metrics") or DEFAULT_ACTIVITY) + [PHASE]
    rows = []
    for metric in metrics:
        if metric not in logged:
            raise CyclingFigureError(f"metric {metric!r} was not logged by the runs of {spec['experiment']!r}")
        msel = sel[sel["metric"] == metric]
        for v in variants:
            cell = msel[msel["variant"] == v]
            if cell.empty:
                continue
            wide = cell.pivot_table(index="seed", columns="step", values="value", aggfunc="first")
            if wide.isna().any().any():
                raise CyclingFigureError(f"{metric}, {v}: the seeds logged different steps")
            x = wide.to_numpy(dtype=np.float64)[:, None, :]
            point, ci = estimate({v: x}, spec.get("statistic", "mean"), st["curve_reps"], st["confidence"], st["seed"])[
                v
            ]
            rows.append(
                pd.DataFrame(
                    {
                        "metric": metric,
                        "env": ENV,
                        "group": v,
                        "step": wide.columns.to_numpy(dtype=np.int64),
                        "point": point,
                        "ci_low": ci[0],
                        "ci_high": ci[1],
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def phases(data: pd.DataFrame) -> list[tuple[int, float, float]]:
    """(phase, first step, last step) from the `cycle.phase` curve of the first group. A boundary is drawn at
    the last logged step of a phase, which is exact when the log interval divides `phase_steps`."""
    curve = data[data["metric"] == PHASE]
    if curve.empty:
        raise CyclingFigureError(f"figure data has no {PHASE!r} rows")
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


def draw(spec: dict[str, Any], data: pd.DataFrame, colors: dict[str, str] | None = None):
    """Top row: return on each task (shaded where that task is trained); bottom row: activity metrics."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    metrics = list(pd.unique(data["metric"]))
    task_metrics_ = [m for m in metrics if m.startswith(TASK_PREFIX)]
    tasks = [m[len(TASK_PREFIX) :] for m in task_metrics_]
    activity = [m for m in metrics if m not in task_metrics_ and m != PHASE]
    groups = list(pd.unique(data["group"]))
    if colors is None:
        cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        colors = {g: cycle[i % len(cycle)] for i, g in enumerate(groups)}
    spans = phases(data)
    boundaries = [end for _, _, end in spans[:-1]]
    max_step = float(data["step"].max())
    scale, xlabel = (1e6, "total env steps (M)") if max_step >= 1e6 else (1e3, "total env steps (k)")
    if max_step < 1e3:
        scale, xlabel = 1.0, "total env steps"

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
            ax.set_ylabel(spec.get("ylabel", "evaluation return"))
    for j, metric in enumerate(activity):
        ax = fig.add_subplot(grid[1, j * n_top : (j + 1) * n_top])
        plot(ax, metric)
        ax.set_ylabel(metric)
        ax.set_xlabel(spec.get("xlabel", xlabel))
        top = ax.secondary_xaxis("top")
        top.set_xticks(
            [(s + e) / 2 / scale for _, s, e in spans], [tasks[p % len(tasks)].split("-")[0] for p, _, _ in spans]
        )
        top.tick_params(length=0, labelsize=6)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 6))
    fig.tight_layout(rect=(0, 0.07, 1, 0.95 if spec.get("title") else 1))
    if spec.get("title"):
        fig.suptitle(spec["title"])
    return fig
