"""`neuroplastic plot`: one PNG of any logged metric for one or more run directories, to look rather than read.

A finished run is read from `metrics.parquet`, a running or killed one from `metrics.jsonl` (a last line cut short,
which a run is writing or was killed while writing, is left out with a warning). Each curve is
labelled by what tells the runs apart (agent, methods, env, seed from each `config.json`); what they share goes
into the title.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from neuroplastic import runlog


class PlotError(RuntimeError):
    """A run directory, metric or metrics file that cannot be plotted; the message names it."""


@dataclass
class RunCurves:
    run_dir: Path
    config: dict | None
    curves: dict[str, list[tuple[int, float]]]  # metric → [(step, value)]
    notes: list[str] = field(default_factory=list)  # what was left out, for the warnings


def load_run(run_dir: Path) -> RunCurves:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PlotError(f"run directory {run_dir} does not exist")
    parquet, jsonl = run_dir / runlog.METRICS_PARQUET, run_dir / runlog.METRICS_JSONL
    curves: dict[str, list[tuple[int, float]]] = {}
    notes: list[str] = []
    if parquet.is_file():
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(parquet).to_pydict()
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise PlotError(f"{parquet}: unreadable ({type(err).__name__})") from None
        for step, metric, value in zip(table["step"], table["metric"], table["value"], strict=True):
            curves.setdefault(metric, []).append((step, value))
    elif jsonl.is_file():
        raw_lines = jsonl.read_bytes().splitlines(keepends=True)
        if raw_lines and not raw_lines[-1].endswith(b"\n"):
            notes.append(
                f"{jsonl}:{len(raw_lines)}: incomplete last line left out (being written, or the run was killed)"
            )
            raw_lines.pop()
        try:
            events = [runlog.parse_log_line(raw, f"{jsonl}:{i}") for i, raw in enumerate(raw_lines, 1)]
        except runlog.MetricsLineError as err:
            raise PlotError(str(err)) from None
        for step, metrics in events:
            for name, value in metrics.items():
                curves.setdefault(name, []).append((step, value))
    else:
        raise PlotError(f"{run_dir} holds neither {runlog.METRICS_PARQUET} nor {runlog.METRICS_JSONL}: not a run dir")
    try:
        config = json.loads((run_dir / runlog.CONFIG_JSON).read_text())
    except (OSError, json.JSONDecodeError):
        config = None
    return RunCurves(run_dir, config, curves, notes)


def _describe(run: RunCurves) -> dict[str, str]:
    cfg = run.config
    if not cfg:
        return {"run": run.run_dir.name}
    methods = "+".join(m["name"] for m in cfg.get("method", [])) or "no method"
    agent = cfg.get("agent", {})
    return {
        "agent": agent.get("name", "?") if isinstance(agent, dict) else str(agent),
        "method": methods,
        "env": str(cfg.get("env", "?")),
        "seed": f"seed {cfg.get('seed', '?')}",
    }


def labels(runs: list[RunCurves]) -> tuple[list[str], str]:
    """Legend labels (what differs between the runs) and a title (what they share)."""
    described = [_describe(r) for r in runs]
    keys = list(dict.fromkeys(k for d in described for k in d))
    varying = [k for k in keys if len({d.get(k) for d in described}) > 1]
    shared = [described[0][k] for k in keys if k not in varying and k in described[0]]
    out = [" ".join(d.get(k, "?") for k in varying) or r.run_dir.name for d, r in zip(described, runs, strict=True)]
    if len(set(out)) < len(out):  # same config in two directories
        out = [f"{label} ({r.run_dir.name})" for label, r in zip(out, runs, strict=True)]
    return out, " ".join(shared)


def plot(run_dirs: list[Path], metrics: list[str], out: Path) -> list[str]:
    """Draw `metrics` (one panel each) of every run into the PNG `out`. Returns warnings (runs missing a metric)."""
    runs = [load_run(Path(d)) for d in run_dirs]
    warnings = [note for r in runs for note in r.notes]
    for metric in metrics:
        having = [r for r in runs if metric in r.curves]
        if not having:
            logged = sorted({m for r in runs for m in r.curves})
            shown = ", ".join(logged[:25]) + (", ..." if len(logged) > 25 else "")
            raise PlotError(f"no run logged metric {metric!r}; they logged: {shown}")
        warnings += [f"{r.run_dir} did not log {metric!r}" for r in runs if metric not in r.curves]

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    legend, title = labels(runs)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(7, 3.2 * len(metrics)), squeeze=False, sharex=True)
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        for i, (run, label) in enumerate(zip(runs, legend, strict=True)):
            points = sorted(run.curves.get(metric, []))
            marker = "." if len(points) < 30 else None  # few points (a short run): show where they are
            if points:  # one colour per run in every panel, whichever runs logged the metric
                ax.plot([p[0] for p in points], [p[1] for p in points], label=label, marker=marker, color=f"C{i % 10}")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("env step")
    axes[0, 0].legend(fontsize="small")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return warnings
