"""`reference_curves`: our curves of one metric (a line per variant, bootstrap CI band over seeds) over the
published reference results at the same x (`neuroplastic.reference`; src/neuroplastic/data/reference/): a curve
source is drawn as its mean ± std band; a per-seed source (the TD3 authors' 10 curves) as its median with the
interquartile range and, lighter, the min-max range over seeds, at every one of its checkpoints inside our x range;
an endpoint source (TD3's numbers at 1M) as a marker with its std, at its step, or at the panel's right edge
labelled with its step when our runs stop earlier. Where a reference's protocol differs from ours (env version,
hyperparameters, training vs evaluation return, endpoint vs curve) the panel says so. Figure data: [env, group,
source, kind, step, point, ci_low, ci_high, range_low, range_high, note]; `kind` is `ours`, `curve`, `seeds` or
`endpoint`. A `curve`/`endpoint` reference's interval is mean ± std across its seeds, a `seeds` reference's point
is the median, its interval the interquartile range and its range min-max (NaN for the other kinds)."""

from __future__ import annotations

import math
import textwrap
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from neuroplastic import reference
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
from neuroplastic.figures.kinds._visual import numeric

REFERENCE_COLOR = "#7f7f7f"
NUMERIC = ("step", "point", "ci_low", "ci_high", "range_low", "range_high")
COLUMNS = ["env", "group", "source", "kind", "step", "point", "ci_low", "ci_high", "range_low", "range_high", "note"]


class Spec(FigureSpec):
    metric: str = "eval_return"
    references: list[str] = Field(min_length=1, description="reference sources (src/neuroplastic/data/reference)")
    statistic: Literal["mean", "iqm", "median"] = "mean"
    ours_protocol: str = Field("", description="one line on how our runs were trained, printed under the panels")


def check(spec: Spec, plan: Any) -> list[str]:
    """Unknown reference names, and references that cover none of the figure's envs."""
    problems = []
    envs = spec.envs or plan.config["experiments"][spec.experiment]["envs"]
    for name in spec.references:
        try:
            reference.source(name)
        except reference.ReferenceError as err:
            problems.append(f"references: {err}")
            continue
        if all(reference.points(name, env).empty for env in envs):
            problems.append(f"references: {name!r} has no numbers for any of the envs {', '.join(envs)}")
    return problems


def reference_rows(names: list[str], env: str) -> list[pd.DataFrame]:
    """Each reference's points for `env` as figure-data rows, with its notes: mean ± std as the interval, or for a
    per-seed source the median, interquartile range and min-max range."""
    frames = []
    for name in names:
        src = reference.source(name)
        if src.kind == "seeds":
            b = reference.band(name, env)
            point, low, high, range_low, range_high = b["median"], b["q25"], b["q75"], b["min"], b["max"]
        else:
            b = reference.points(name, env)
            std = b["std"].fillna(0.0)
            point, low, high = b["mean"], b["mean"] - std, b["mean"] + std
            range_low = range_high = math.nan
        if b.empty:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "env": env,
                    "group": src.label,
                    "source": name,
                    "kind": src.kind,
                    "step": b["step"],
                    "point": point,
                    "ci_low": low,
                    "ci_high": high,
                    "range_low": range_low,
                    "range_high": range_high,
                    "note": " | ".join(reference.protocol_notes(name, env)),
                }
            )
        )
    return frames


def compute(spec: Spec, tables: AggregateTables) -> pd.DataFrame:
    variants, envs, sel = selection(spec, own_curves(spec, tables))
    check_metric(sel, spec.metric, spec.experiment)
    sel = sel[sel["metric"] == spec.metric]
    frames = []
    for env in envs:
        for v in variants:
            cell = sel[(sel["variant"] == v) & (sel["env"] == env)]
            if not cell.empty:
                ours = curve_frame(cell, spec.metric, env, v, spec.statistic, spec.stats).drop(columns="metric")
                frames.append(ours.assign(source="ours", kind="ours", range_low=math.nan, range_high=math.nan, note=""))
        frames += reference_rows(spec.references, env)
    if not any((f["kind"] == "ours").any() for f in frames):
        raise FigureError(f"no {spec.metric} in experiment {spec.experiment!r}")
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def _draw_reference(ax: Any, ref: pd.DataFrame, x_max: float, scale: float, marker: str, shift: float) -> Any:
    """A curve source as a dashed mean with a ±std band inside our x range; a per-seed source as a dashed median
    with its interquartile range and, lighter, its min-max range at every checkpoint inside our x range; an
    endpoint as a marker ± std at its step, or at the right edge (labelled with its step) when our runs stop
    earlier. `shift` separates the markers of several endpoints at the same x."""
    if ref["kind"].iloc[0] in ("curve", "seeds"):
        inside = ref[ref["step"] <= x_max]
        x = inside["step"].to_numpy() / scale
        (line,) = ax.plot(x, inside["point"], color=REFERENCE_COLOR, linestyle="--", linewidth=1.0)
        if ref["kind"].iloc[0] == "seeds":
            ax.fill_between(x, inside["range_low"], inside["range_high"], color=REFERENCE_COLOR, alpha=0.1, linewidth=0)
            ax.fill_between(x, inside["ci_low"], inside["ci_high"], color=REFERENCE_COLOR, alpha=0.25, linewidth=0)
        else:
            ax.fill_between(x, inside["ci_low"], inside["ci_high"], color=REFERENCE_COLOR, alpha=0.15, linewidth=0)
        return line
    line = None
    for r in ref.itertuples():
        beyond = r.step > x_max * 1.02
        x = (x_max if beyond else r.step) / scale + shift
        err = np.array([[r.point - r.ci_low], [r.ci_high - r.point]])
        line = ax.errorbar(x, r.point, yerr=err, fmt=marker, color=REFERENCE_COLOR, capsize=3, markersize=4)
        if beyond:
            ax.annotate(f"@{r.step / 1e6:g}M", (x, r.point), textcoords="offset points", xytext=(4, 0), fontsize=6)
    return line


def render(spec: Spec, data: pd.DataFrame):
    data = numeric(data, NUMERIC)
    data["note"] = data["note"].astype(str)
    plt = draw.plt()
    envs = list(pd.unique(data["env"]))
    ours = data[data["kind"] == "ours"]
    groups = list(pd.unique(ours["group"]))
    colors = draw.colors(groups, spec.palette)
    x_max = float(ours["step"].max())
    scale, xlabel = draw.step_axis(x_max)
    sources = list(pd.unique(data.loc[data["kind"] != "ours", "source"]))
    markers = {s: m for s, m in zip(sources, "osD^v<>", strict=False)}
    width = max(3.4 * len(envs), 6.5)  # room for the legend and the protocol notes
    notes = ([f"ours: {spec.ours_protocol}"] if spec.ours_protocol else []) + list(
        dict.fromkeys(n for n in data["note"] if n)
    )
    wrapped = [line for note in notes for line in textwrap.wrap(note, int(width * 21))]
    notes_in = 0.11 * len(wrapped) + 0.15
    fig, axes = plt.subplots(1, len(envs), figsize=(width, 3.2 + notes_in), squeeze=False)
    handles: dict[str, Any] = {}
    for c, env in enumerate(envs):
        ax = axes[0][c]
        cell = data[data["env"] == env]
        for g in groups:
            d = cell[(cell["kind"] == "ours") & (cell["group"] == g)]
            if d.empty:
                continue
            x = d["step"].to_numpy() / scale
            (line,) = ax.plot(x, d["point"], color=colors[g], label=g)
            ax.fill_between(x, d["ci_low"], d["ci_high"], color=colors[g], alpha=0.2, linewidth=0)
            handles.setdefault(g, line)
        for i, source in enumerate(sources):
            ref = cell[cell["source"] == source]
            if ref.empty:
                continue
            line = _draw_reference(ax, ref, x_max, scale, markers[source], 0.015 * i * x_max / scale)
            suffix = {"endpoint": " (endpoint)", "seeds": ": median, IQR, min-max"}.get(ref["kind"].iloc[0], "")
            label = ref["group"].iloc[0] + suffix
            handles.setdefault(label, line)
        ax.set_title(env)
        ax.set_xlabel(spec.xlabel or xlabel)
        if c == 0:
            ax.set_ylabel(spec.ylabel or spec.metric)
    height = fig.get_size_inches()[1]
    fig.text(0.01, 0.01, "\n".join(wrapped), fontsize=6, va="bottom", ha="left")
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper center",
        ncol=min(len(handles), int(width // 2.2)),
        fontsize=7,
        bbox_to_anchor=(0.5, 1.0),
    )
    top = 1.0 - (0.1 + 0.13 * math.ceil(len(handles) / int(width // 2.2))) / height
    fig.tight_layout(rect=(0, notes_in / height, 1, top))
    return fig


KIND = FigureKind("reference_curves", Spec, compute, render, check=check)
