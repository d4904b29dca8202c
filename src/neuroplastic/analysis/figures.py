"""Figures and tables from the aggregated tables: compute the figure's data (statistics), then draw it.

A figure spec (one entry of `figures:` in a workflow config, see config/README.md) names a `kind` and an
`experiment`. `compute` turns the experiment's tidy tables into the figure's data table (every number that is
drawn, with its CI), `draw` renders that table, `save` writes PDF + PNG with the Agg backend, the committed
style and no timestamps, so the same data always gives byte-identical files.

Kinds (figure data columns in brackets):
- `curves`: metric(s) vs env steps, one panel per metric × env, line per variant, shaded bootstrap CI of the
  mean over seeds [metric, env, group, step, point, ci_low, ci_high];
- `final_bars`: final score per env (+ the IQM of normalised scores over envs) [env, group, point, ci_*];
- `score_vs_param`: a statistic of normalised final scores against a numeric tag (sensitivity sweeps,
  sparse training: IQM vs sparsity), line per `hue`, line style per `style` [hue, style, x, point, ci_*];
- `aggregate_intervals`: IQM / mean / median / optimality gap with CIs [group, statistic, point, ci_*];
- `performance_profile`: fraction of runs above τ [group, tau, point, ci_*];
- `probability_of_improvement`: P(target > other) [group, other, point, ci_*];
- `cycling`: the continual MuJoCo figure (cycling_figure.py): return on every task over total env steps with
  the phase boundaries marked, and activity metrics (FAU) on the same axis [the `curves` columns];
- `final_table`, `aggregate_table`: tables (see tables.py);
- `switch_table` (Adaptive RR switch steps), `reference_table` (Ma et al.'s Table 1 next to ours): tables of the
  visual-RL study (see visual_rl.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neuroplastic.analysis import cycling_figure, stats, visual_rl

STYLE = Path(__file__).with_name("neuroplastic.mplstyle")
# `switch_table` and `reference_table` (the visual-RL study) are computed and written by visual_rl.py.
TABLE_KINDS = ("final_table", "aggregate_table", *visual_rl.TABLE_KINDS)
FIGURE_KINDS = (
    "curves",
    "final_bars",
    "score_vs_param",
    "aggregate_intervals",
    "performance_profile",
    "probability_of_improvement",
    "cycling",
)
KINDS = FIGURE_KINDS + TABLE_KINDS
AGGREGATE_LABEL = "IQM (normalised)"

_COMMON = {"kind", "experiment", "title", "caption", "labels", "envs", "xlabel", "ylabel"}
_KIND_KEYS = {
    "curves": {"metrics", "statistic"},
    "final_bars": {"metric", "normalize", "reference"},
    "score_vs_param": {"metric", "x", "hue", "style", "statistic", "normalize", "reference", "log_x"},
    "aggregate_intervals": {"metric", "statistics", "normalize", "reference"},
    "performance_profile": {"metric", "tau", "normalize", "reference"},
    "probability_of_improvement": {"metric", "target"},
    "final_table": {"metric", "normalize", "reference"},
    "aggregate_table": {"metric", "statistics", "normalize", "reference"},
    "cycling": cycling_figure.SPEC_KEYS,
    "switch_table": {"metric", "frames_per_step"},
    "reference_table": {"metric", "columns", "frames_per_step"},
}
_NORMALIZE_DEFAULT = {
    "final_bars": True,
    "score_vs_param": True,
    "aggregate_intervals": True,
    "performance_profile": True,
    "final_table": False,
    "aggregate_table": True,
}
_PALETTE = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
_LINESTYLES = ["-", "--", ":", "-."]


class FigureError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------------------
# spec helpers and validation


def normalize_of(spec: dict[str, Any]) -> bool:
    return bool(spec.get("normalize", _NORMALIZE_DEFAULT.get(spec["kind"], False)))


def reference_of(spec: dict[str, Any]) -> dict[str, Any]:
    ref = dict(spec.get("stats", {}).get("reference", {}))
    ref.update(spec.get("reference") or {})
    ref.setdefault("label", "TD3")
    if not ref.get("experiment"):
        ref["experiment"] = spec["experiment"]
    return ref


def figure_problems(spec: dict[str, Any], plan: Any) -> list[str]:
    """Everything wrong with one figure spec, checked against the expanded plan before any job runs."""
    kind = spec["kind"]
    problems = []
    for key in sorted(set(spec) - _COMMON - _KIND_KEYS[kind]):
        problems.append(f"key {key!r} does not apply to kind {kind!r}")
    exp = spec["experiment"]
    experiments = plan.config["experiments"]
    if exp not in experiments:
        return [*problems, f"experiment {exp!r} is not declared (declared: {', '.join(experiments)})"]
    members = plan.experiment_members(exp)
    labels = list(dict.fromkeys(m.label for m in members))
    for label in spec.get("labels", []):
        if label not in labels:
            problems.append(f"label {label!r} is not a variant of experiment {exp!r} (variants: {', '.join(labels)})")
    envs = experiments[exp]["envs"]
    for env in spec.get("envs", []):
        if env not in envs:
            problems.append(f"env {env!r} is not in experiment {exp!r} (envs: {', '.join(envs)})")
    chosen_labels = spec.get("labels") or labels
    chosen = [m for m in members if m.label in chosen_labels]
    if kind == "cycling" and envs != [cycling_figure.ENV]:
        problems.append(f"a cycling figure needs an experiment with envs [{cycling_figure.ENV}], not {envs}")
    if kind == "reference_table":
        problems += [p for p in visual_rl.spec_problems(spec) if p.startswith("columns.")]
    if kind == "probability_of_improvement":
        if "target" not in spec:
            problems.append("probability_of_improvement needs `target` (the label compared against the others)")
        elif spec["target"] not in chosen_labels:
            problems.append(f"target {spec['target']!r} is not among the figure's labels")
    if kind == "score_vs_param":
        if "x" not in spec:
            problems.append("score_vs_param needs `x` (a numeric tag of the variants, e.g. sparsity)")
        for key in ("x", "hue", "style"):
            tag = spec.get(key)
            if not tag or tag == "label":
                continue
            missing = sorted({m.variant for m in chosen if tag not in m.tags})
            if missing:
                problems.append(f"{key}: tag {tag!r} is missing from variants {', '.join(missing)}")
            elif key == "x" and not all(isinstance(m.tags[tag], int | float) for m in chosen):
                problems.append(f"x: tag {tag!r} must be numeric in every variant")
    if normalize_of(spec) and kind in _NORMALIZE_DEFAULT:
        ref = reference_of({**spec, "stats": plan.config["stats"]})
        if ref["experiment"] not in experiments:
            problems.append(f"reference experiment {ref['experiment']!r} is not declared")
        else:
            ref_members = plan.experiment_members(ref["experiment"])
            if ref["label"] not in {m.label for m in ref_members}:
                problems.append(
                    f"reference label {ref['label']!r} is not a variant of experiment {ref['experiment']!r}; "
                    "set `reference:` or `normalize: false`"
                )
            ref_envs = experiments[ref["experiment"]]["envs"]
            for env in spec.get("envs") or envs:
                if env not in ref_envs:
                    problems.append(f"env {env!r} has no reference runs in experiment {ref['experiment']!r}")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# loading


def load_aggregates(aggregates_root: Path, experiment: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = Path(aggregates_root) / experiment
    try:
        return pd.read_parquet(base / "curves.parquet"), pd.read_parquet(base / "final.parquet")
    except FileNotFoundError as err:
        raise FigureError(f"aggregated tables for experiment {experiment!r} not found under {base}: {err}") from None


def _selection(spec: dict[str, Any], df: pd.DataFrame) -> tuple[list[str], list[str], pd.DataFrame]:
    """Variants (in declaration order, filtered by `labels`) and envs of the figure; rows restricted to them."""
    if spec.get("labels"):
        order = {label: i for i, label in enumerate(spec["labels"])}
        df = df[df["label"].isin(order)]
    else:
        order = {label: i for i, label in enumerate(pd.unique(df["label"]))}
    variants = (
        df[["label", "variant"]]
        .drop_duplicates()
        .assign(_o=lambda d: d["label"].map(order))
        .sort_values(["_o"], kind="stable")["variant"]
        .tolist()
    )
    envs = spec.get("envs") or list(pd.unique(df["env"]))
    return variants, envs, df[df["env"].isin(envs)]


def _check_metric(df: pd.DataFrame, metric: str, experiment: str) -> None:
    if metric not in set(df["metric"]):
        known = ", ".join(sorted(set(df["metric"])))
        raise FigureError(
            f"metric {metric!r} was not logged by the runs of experiment {experiment!r} (logged: {known})"
        )


def _ordered_final(spec: dict[str, Any], final: pd.DataFrame, declared_order: list[str]) -> pd.DataFrame:
    """Final table with variants in the experiment's declaration order (the aggregate sorts rows by label)."""
    rank = {v: i for i, v in enumerate(declared_order)}
    return (
        final.assign(_r=final["variant"].map(rank)).sort_values(["_r", "env", "seed"], kind="stable").drop(columns="_r")
    )


def _declared_order(spec: dict[str, Any]) -> list[str]:
    return list(spec.get("variant_order") or [])


# ---------------------------------------------------------------------------------------------------------------
# compute: tidy tables → figure data


def compute(spec: dict[str, Any], aggregates_root: Path) -> pd.DataFrame:
    kind = spec["kind"]
    st = spec["stats"]
    curves, final = load_aggregates(aggregates_root, spec["experiment"])
    final = _ordered_final(spec, final, _declared_order(spec))
    curves = _ordered_final(spec, curves, _declared_order(spec))
    metric = spec.get("metric", "eval_return")
    if kind == "curves":
        return _compute_curves(spec, curves, st)
    if kind == "cycling":
        return cycling_figure.compute(spec, curves, st, stats.curve_estimates)
    if kind in visual_rl.TABLE_KINDS:
        return visual_rl.compute(spec, curves, final)

    _check_metric(final, metric, spec["experiment"])
    variants, envs, sel = _selection(spec, final)
    scores = stats.score_matrices(sel, variants, envs, metric)
    if normalize_of(spec) and kind in _NORMALIZE_DEFAULT:
        ref = reference_of(spec)
        ref_final = (
            final if ref["experiment"] == spec["experiment"] else load_aggregates(aggregates_root, ref["experiment"])[1]
        )
        ref_means = stats.reference_means(ref_final, ref["label"], envs, metric)
        normed = stats.normalise(scores, ref_means, envs)
    else:
        normed = scores
    seed, conf = st["seed"], st["confidence"]

    if kind in ("final_bars", "final_table"):
        rows = []
        for env_i, env in enumerate(envs):
            per_env = {v: scores[v][:, [env_i]] for v in variants}
            if kind == "final_table" and normalize_of(spec):
                per_env = {v: normed[v][:, [env_i]] for v in variants}
            est = stats.interval_estimates(per_env, ["mean"], st["reps"], conf, seed)
            rows.append(est.assign(env=env))
        if kind == "final_bars" and normalize_of(spec):
            est = stats.interval_estimates(normed, ["iqm"], st["reps"], conf, seed)
            rows.append(est.assign(env=AGGREGATE_LABEL))
        out = pd.concat(rows, ignore_index=True)
        return out[["env", "group", "statistic", "point", "ci_low", "ci_high", "runs"]]

    if kind in ("aggregate_intervals", "aggregate_table"):
        which = spec.get("statistics") or list(stats.STATISTICS)
        return stats.interval_estimates(normed, which, st["reps"], conf, seed)

    if kind == "performance_profile":
        tau = spec.get("tau") or {}
        num = tau.get("num", 101)
        if "min" in tau or "max" in tau:
            taus = np.linspace(tau.get("min", 0.0), tau.get("max", 2.0), num)
        else:
            taus = stats.default_taus(normed, num)
        return stats.performance_profiles(normed, taus, st["profile_reps"], conf, seed)

    if kind == "probability_of_improvement":
        target_variants = [v for v in variants if _label_of(final, v) == spec["target"]]
        if len(target_variants) != 1:
            raise FigureError(f"target {spec['target']!r} must be exactly one variant, found {target_variants}")
        return stats.probability_of_improvement(normed, target_variants[0], st["reps"], conf, seed)

    if kind == "score_vs_param":
        return _compute_score_vs_param(spec, final, sel, normed, variants, st)
    raise FigureError(f"unknown figure kind {kind!r}")


def _label_of(df: pd.DataFrame, variant: str) -> str:
    return str(df.loc[df["variant"] == variant, "label"].iloc[0])


def _tag(df: pd.DataFrame, variant: str, tag: str) -> Any:
    if tag == "label":
        return _label_of(df, variant)
    value = df.loc[df["variant"] == variant, f"tag_{tag}"].iloc[0]
    return value.item() if hasattr(value, "item") else value


def _compute_curves(spec: dict[str, Any], curves: pd.DataFrame, st: dict[str, Any]) -> pd.DataFrame:
    variants, envs, sel = _selection(spec, curves)
    rows = []
    for metric in spec.get("metrics") or ["eval_return"]:
        _check_metric(sel, metric, spec["experiment"])
        msel = sel[sel["metric"] == metric]
        for env in envs:
            for v in variants:
                cell = msel[(msel["variant"] == v) & (msel["env"] == env)]
                if cell.empty:
                    continue  # e.g. a method-specific metric (density) that other variants do not log
                wide = cell.pivot_table(index="seed", columns="step", values="value", aggfunc="first")
                if wide.isna().any().any():
                    bad = sorted(cell.loc[cell["seed"].isin(wide.index[wide.isna().any(axis=1)]), "run_id"].unique())
                    raise FigureError(f"{metric} on {env}, {v}: runs log different steps ({', '.join(bad)})")
                x = wide.to_numpy(dtype=np.float64)[:, None, :]
                est = stats.curve_estimates(
                    {v: x}, spec.get("statistic", "mean"), st["curve_reps"], st["confidence"], st["seed"]
                )
                point, ci = est[v]
                rows.append(
                    pd.DataFrame(
                        {
                            "metric": metric,
                            "env": env,
                            "group": v,
                            "step": wide.columns.to_numpy(dtype=np.int64),
                            "point": point,
                            "ci_low": ci[0],
                            "ci_high": ci[1],
                        }
                    )
                )
    if not rows:
        raise FigureError(f"no data for metrics {spec.get('metrics')} in experiment {spec['experiment']!r}")
    return pd.concat(rows, ignore_index=True)


def _compute_score_vs_param(
    spec: dict[str, Any],
    final: pd.DataFrame,
    sel: pd.DataFrame,
    normed: dict[str, np.ndarray],
    variants: list[str],
    st: dict[str, Any],
) -> pd.DataFrame:
    statistic = spec.get("statistic", "iqm")
    hue, style, x = spec.get("hue", "label"), spec.get("style"), spec["x"]
    rows = []
    for v in variants:
        est = stats.interval_estimates({v: normed[v]}, [statistic], st["reps"], st["confidence"], st["seed"])
        rec = est.iloc[0].to_dict()
        rows.append(
            {
                "hue": str(_tag(sel, v, hue)),
                "style": "" if not style else str(_tag(sel, v, style)),
                "x": float(_tag(sel, v, x)),
                "group": v,
                "statistic": statistic,
                "point": rec["point"],
                "ci_low": rec["ci_low"],
                "ci_high": rec["ci_high"],
            }
        )
    return pd.DataFrame(rows).sort_values(["hue", "style", "x"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------
# drawing


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(groups: list[str], palette: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    free = [c for c in _PALETTE if c not in palette.values()]
    i = 0
    for g in groups:
        base = g.split("[", 1)[0]
        if g in palette:
            out[g] = palette[g]
        elif base in palette and base not in out.values():
            out[g] = palette[base]
        else:
            out[g] = free[i % len(free)] if free else _PALETTE[i % len(_PALETTE)]
            i += 1
    return out


def _step_axis(max_step: float) -> tuple[float, str]:
    if max_step >= 1e6:
        return 1e6, "env steps (M)"
    if max_step >= 1e3:
        return 1e3, "env steps (k)"
    return 1.0, "env steps"


def _legend(fig, handles, labels, ncol: int) -> None:
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(ncol, 6), bbox_to_anchor=(0.5, 0.0))


def draw(spec: dict[str, Any], data: pd.DataFrame):
    """Render figure data into a matplotlib Figure (the style is applied by `render_to_files`)."""
    kind = spec["kind"]
    drawer = {
        "curves": _draw_curves,
        "final_bars": _draw_final_bars,
        "score_vs_param": _draw_score_vs_param,
        "aggregate_intervals": _draw_intervals,
        "performance_profile": _draw_profiles,
        "probability_of_improvement": _draw_poi,
        "cycling": _draw_cycling,
    }.get(kind)
    if drawer is None:
        raise FigureError(f"kind {kind!r} is not a figure")
    fig = drawer(spec, data)
    if spec.get("title"):
        fig.suptitle(spec["title"])
    return fig


def _draw_curves(spec: dict[str, Any], data: pd.DataFrame):
    plt = _plt()
    metrics = list(pd.unique(data["metric"]))
    envs = list(pd.unique(data["env"]))
    groups = list(pd.unique(data["group"]))
    colors = _colors(groups, spec.get("palette", {}))
    scale, xlabel = _step_axis(float(data["step"].max()))
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
                ax.set_ylabel(spec.get("ylabel") if spec.get("ylabel") and len(metrics) == 1 else metric)
            if r == len(metrics) - 1:
                ax.set_xlabel(spec.get("xlabel", xlabel))
    _legend(fig, list(handles.values()), list(handles), len(handles))
    fig.tight_layout(rect=(0, 0.08 if len(metrics) == 1 else 0.05, 1, 0.95 if spec.get("title") else 1))
    return fig


def _draw_cycling(spec: dict[str, Any], data: pd.DataFrame):
    return cycling_figure.draw(spec, data, _colors(list(pd.unique(data["group"])), spec.get("palette", {})))


def _draw_final_bars(spec: dict[str, Any], data: pd.DataFrame):
    plt = _plt()
    envs = list(pd.unique(data["env"]))
    groups = list(pd.unique(data["group"]))
    colors = _colors(groups, spec.get("palette", {}))
    fig, axes = plt.subplots(1, len(envs), figsize=(max(2.4, 0.45 * len(groups) + 1.0) * len(envs), 2.8), squeeze=False)
    for c, env in enumerate(envs):
        ax = axes[0][c]
        d = data[data["env"] == env].set_index("group").reindex(groups)
        pos = np.arange(len(groups))
        err = np.vstack([d["point"] - d["ci_low"], d["ci_high"] - d["point"]])
        ax.bar(pos, d["point"], yerr=err, color=[colors[g] for g in groups], capsize=2, error_kw={"linewidth": 0.8})
        ax.set_xticks(pos, groups, rotation=45, ha="right")
        ax.set_title(env)
        if c == 0:
            ax.set_ylabel(spec.get("ylabel", f"final {spec.get('metric', 'eval_return')}"))
    fig.tight_layout(rect=(0, 0, 1, 0.93 if spec.get("title") else 1))
    return fig


def _draw_score_vs_param(spec: dict[str, Any], data: pd.DataFrame):
    plt = _plt()
    hues = list(pd.unique(data["hue"]))
    styles = list(pd.unique(data["style"]))
    colors = _colors(hues, spec.get("palette", {}))
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for h in hues:
        for si, s in enumerate(styles):
            d = data[(data["hue"] == h) & (data["style"] == s)].sort_values("x")
            if d.empty:
                continue
            name = h if not s else f"{h} ({s})"
            ls = _LINESTYLES[si % len(_LINESTYLES)]
            ax.plot(d["x"], d["point"], ls, marker="o", markersize=3, color=colors[h], label=name)
            ax.fill_between(d["x"], d["ci_low"], d["ci_high"], color=colors[h], alpha=0.15, linewidth=0)
    if spec.get("log_x"):
        ax.set_xscale("log")
    ax.set_xlabel(spec.get("xlabel", spec["x"]))
    stat = spec.get("statistic", "iqm")
    norm = "normalised " if normalize_of(spec) else ""
    ax.set_ylabel(spec.get("ylabel", f"{stat.upper() if stat == 'iqm' else stat} {norm}final score"))
    ax.legend(loc="best")
    fig.tight_layout(rect=(0, 0, 1, 0.93 if spec.get("title") else 1))
    return fig


def _draw_intervals(spec: dict[str, Any], data: pd.DataFrame):
    plt = _plt()
    statistics = list(pd.unique(data["statistic"]))
    groups = list(pd.unique(data["group"]))
    colors = _colors(groups, spec.get("palette", {}))
    fig, axes = plt.subplots(
        1, len(statistics), figsize=(2.2 * len(statistics) + 0.8, 0.35 * len(groups) + 1.0), squeeze=False
    )
    names = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}
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
        ax.set_title(names.get(stat, stat))
        ax.invert_yaxis()
    fig.supxlabel(
        spec.get("xlabel", "normalised score" if normalize_of(spec) else spec.get("metric", "eval_return")), fontsize=8
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93 if spec.get("title") else 1))
    return fig


def _draw_profiles(spec: dict[str, Any], data: pd.DataFrame):
    plt = _plt()
    groups = list(pd.unique(data["group"]))
    colors = _colors(groups, spec.get("palette", {}))
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for g in groups:
        d = data[data["group"] == g]
        ax.plot(d["tau"], d["point"], color=colors[g], label=g)
        ax.fill_between(d["tau"], d["ci_low"], d["ci_high"], color=colors[g], alpha=0.2, linewidth=0)
    ax.set_xlabel(spec.get("xlabel", "normalised score τ" if normalize_of(spec) else "score τ"))
    ax.set_ylabel(spec.get("ylabel", "fraction of runs with score > τ"))
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="best")
    fig.tight_layout(rect=(0, 0, 1, 0.93 if spec.get("title") else 1))
    return fig


def _draw_poi(spec: dict[str, Any], data: pd.DataFrame):
    plt = _plt()
    others = list(data["other"])
    target = str(data["group"].iloc[0]) if len(data) else spec.get("target", "")
    colors = _colors([target, *others], spec.get("palette", {}))
    fig, ax = plt.subplots(figsize=(4.2, 0.35 * len(others) + 1.0))
    for i, row in enumerate(data.itertuples()):
        ax.barh(i, row.ci_high - row.ci_low, left=row.ci_low, height=0.6, color=colors[row.other], alpha=0.75)
        ax.vlines(row.point, i - 0.3, i + 0.3, color="black", linewidth=1.2)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(others)), [f"{target} vs {o}" for o in others])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(spec.get("xlabel", f"P({target} > Y)"))
    fig.tight_layout(rect=(0, 0, 1, 0.93 if spec.get("title") else 1))
    return fig


# ---------------------------------------------------------------------------------------------------------------
# files


def save(fig, prefix: Path) -> list[Path]:
    """PDF + PNG without timestamps; the same figure always gives the same bytes."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = prefix.with_suffix(".pdf"), prefix.with_suffix(".png")
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "neuroplastic"})
    fig.savefig(png, metadata={"Software": None})
    _plt().close(fig)
    return [pdf, png]


def render_to_files(spec: dict[str, Any], data: pd.DataFrame, prefix: Path) -> list[Path]:
    """Draw a figure or write a table from its data, under the committed style."""
    from neuroplastic.analysis import tables

    if spec["kind"] in visual_rl.TABLE_KINDS:
        return visual_rl.write(spec, data, prefix)
    if spec["kind"] in TABLE_KINDS:
        return tables.write(spec, data, prefix)
    plt = _plt()
    with plt.style.context(str(STYLE)):
        return save(draw(spec, data), prefix)


def write_data(data: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


def read_data(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)


def load_spec(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
