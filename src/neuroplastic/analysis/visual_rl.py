"""Tables for the visual-RL study (DrQ-v2 on pixel DMC, issue 7), from the workflow's tidy tables.

Two table kinds the generic figure machinery does not cover:

- `switch_table`: when Adaptive RR switched from the low to the high replay ratio, per env and variant: runs,
  how many switched, mean / min / max switch step, in agent steps and in frames (× `frames_per_step`, 2 on
  pixel DMC). Input: the `curves` table (every logged metric of every run), metric `adaptive_rr.switch_step`
  (logged from the switch on; a run without it never switched).
- `reference_table`: the numbers Ma et al. (ICLR 2024) report in their Table 1 (average return after 2M env
  steps = frames, 5 seeds, mean ± std over seeds; `shared/spec/BASELINES.md` §7) next to ours from the same
  runs: our final `eval_return` (the workflow's final score: mean of the last `final_fraction` of evaluations),
  mean ± std over seeds, with the number of seeds and the frames trained. `columns` maps our variant labels to
  Ma's column names (default: the same names); envs are matched to Ma's tasks by `MA_TASK_ENVS`.

Both are written as CSV + Markdown + LaTeX (`write`); nothing depends on time or machine, so the same data
gives byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLE_KINDS = ("switch_table", "reference_table")

# Ma et al., ICLR 2024, Table 1: average return after 2M env steps (frames), 5 seeds, mean ± std.
MA_COLUMNS = ("RR 0.5", "RR 0.5 + Reset", "RR 0.5 + ReDo", "RR 2", "RR 2 + Reset", "RR 2 + ReDo", "Adaptive RR")
MA_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "Cheetah Run": dict(
        zip(MA_COLUMNS, [(828, 59), (799, 26), (788, 5), (793, 9), (885, 20), (873, 19), (880, 45)], strict=True)
    ),
    "Walker Run": dict(
        zip(MA_COLUMNS, [(710, 39), (648, 107), (618, 50), (709, 7), (749, 10), (734, 16), (758, 12)], strict=True)
    ),
    "Quadruped Run": dict(
        zip(MA_COLUMNS, [(579, 120), (593, 129), (371, 158), (417, 110), (511, 47), (608, 53), (784, 53)], strict=True)
    ),
}
MA_SOURCE = "Ma et al. (ICLR 2024), Table 1: return after 2M frames, 5 seeds, mean ± std"
MA_TASK_ENVS = {
    "Cheetah Run": "dmc-pixels:cheetah-run",
    "Walker Run": "dmc-pixels:walker-run",
    "Quadruped Run": "dmc-pixels:quadruped-run",
}
# Switch frames reported for Quadruped Run (one per seed).
MA_QUADRUPED_SWITCH_FRAMES = (900_000, 1_200_000, 1_100_000, 950_000, 550_000)

_SPEC_KEYS = {
    "switch_table": {"metric", "frames_per_step"},
    "reference_table": {"metric", "columns", "frames_per_step"},
}


class VisualTableError(ValueError):
    pass


def spec_problems(spec: dict[str, Any]) -> list[str]:
    """Keys that do not apply to the table's kind, and bad `columns` entries."""
    common = {"kind", "experiment", "title", "caption", "labels", "envs", "name", "stats", "palette", "variant_order"}
    problems = [
        f"key {k!r} does not apply to kind {spec['kind']!r}"
        for k in sorted(set(spec) - common - _SPEC_KEYS[spec["kind"]])
    ]
    for ours, theirs in (spec.get("columns") or {}).items():
        if theirs not in MA_COLUMNS:
            problems.append(
                f"columns.{ours}: {theirs!r} is not a column of Ma et al.'s Table 1 ({', '.join(MA_COLUMNS)})"
            )
    return problems


def _select(spec: dict[str, Any], df: pd.DataFrame) -> pd.DataFrame:
    if spec.get("labels"):
        df = df[df["label"].isin(spec["labels"])]
    if spec.get("envs"):
        df = df[df["env"].isin(spec["envs"])]
    return df


def _label_order(spec: dict[str, Any], df: pd.DataFrame) -> list[str]:
    return list(spec.get("labels") or pd.unique(df["label"]))


def compute_switch_table(spec: dict[str, Any], curves: pd.DataFrame) -> pd.DataFrame:
    metric = spec.get("metric", "adaptive_rr.switch_step")
    fps = int(spec.get("frames_per_step", 2))
    sel = _select(spec, curves)
    if sel.empty:
        raise VisualTableError(
            f"switch_table: no runs for labels {spec.get('labels')} in experiment {spec.get('experiment')!r}"
        )
    rows = []
    for env in pd.unique(sel["env"]):
        for label in _label_order(spec, sel):
            cell = sel[(sel["env"] == env) & (sel["label"] == label)]
            if cell.empty:
                continue
            runs = sorted(pd.unique(cell["run_id"]))
            switch = cell[cell["metric"] == metric].sort_values("step").groupby("run_id")["value"].last()
            steps = switch.to_numpy(dtype=np.float64)
            rows.append(
                {
                    "env": env,
                    "group": label,
                    "runs": len(runs),
                    "switched": len(steps),
                    "mean_step": float(steps.mean()) if len(steps) else math.nan,
                    "min_step": float(steps.min()) if len(steps) else math.nan,
                    "max_step": float(steps.max()) if len(steps) else math.nan,
                    "mean_frames": float(steps.mean()) * fps if len(steps) else math.nan,
                }
            )
    return pd.DataFrame(rows)


def compute_reference_table(spec: dict[str, Any], final: pd.DataFrame) -> pd.DataFrame:
    metric = spec.get("metric", "eval_return")
    fps = int(spec.get("frames_per_step", 2))
    columns = dict(spec.get("columns") or {})
    sel = _select(spec, final)
    sel = sel[sel["metric"] == metric]
    env_task = {env: task for task, env in MA_TASK_ENVS.items()}
    rows = []
    for env in pd.unique(sel["env"]):
        task = env_task.get(env)
        for label in _label_order(spec, sel):
            cell = sel[(sel["env"] == env) & (sel["label"] == label)]
            if cell.empty:
                continue
            column = columns.get(label, label)
            reported = MA_TABLE1.get(task, {}).get(column) if task else None
            values = cell["value"].to_numpy(dtype=np.float64)
            rows.append(
                {
                    "env": env,
                    "group": label,
                    "ma_task": task or "",
                    "ma_column": column if reported else "",
                    "reported_mean": reported[0] if reported else math.nan,
                    "reported_std": reported[1] if reported else math.nan,
                    "ours_mean": float(values.mean()),
                    "ours_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "seeds": len(values),
                    "frames": int(cell["last_step"].max()) * fps if "last_step" in cell else math.nan,
                }
            )
    if not rows:
        raise VisualTableError(f"reference_table: no {metric} in experiment {spec.get('experiment')!r}")
    return pd.DataFrame(rows)


def compute(spec: dict[str, Any], curves: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    if spec["kind"] == "switch_table":
        return compute_switch_table(spec, curves)
    if spec["kind"] == "reference_table":
        return compute_reference_table(spec, final)
    raise VisualTableError(f"unknown kind {spec['kind']!r}")


# --- writing ------------------------------------------------------------------------------------------------


def _fmt(x: float, nd: int = 0) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{nd}f}"


def _pm(mean: float, std: float) -> str:
    return "–" if math.isnan(mean) else f"{mean:.0f} ± {std:.0f}"


_NUMERIC = (
    "runs", "switched", "mean_step", "min_step", "max_step", "mean_frames",
    "reported_mean", "reported_std", "ours_mean", "ours_std", "seeds", "frames",
)  # fmt: skip


def _table_rows(spec: dict[str, Any], data: pd.DataFrame) -> tuple[list[str], list[list[str]], str]:
    # Figure data comes back from CSV with empty strings for missing numbers (read_data keeps them).
    data = data.copy()
    for col in _NUMERIC:
        if col in data:
            data[col] = pd.to_numeric(data[col], errors="coerce")
    for col in ("ma_task", "ma_column"):
        if col in data:
            data[col] = data[col].fillna("").astype(str)
    if spec["kind"] == "switch_table":
        head = ["env", "method", "switched / runs", "mean switch step", "range (steps)", "mean switch frame"]
        body = [
            [
                r.env,
                r.group,
                f"{int(r.switched)} / {int(r.runs)}",
                _fmt(r.mean_step),
                f"{_fmt(r.min_step)} – {_fmt(r.max_step)}" if r.switched else "–",
                _fmt(r.mean_frames),
            ]
            for r in data.itertuples()
        ]
        caption = (
            "Adaptive RR: env step (agent step) at which the replay ratio switched; frames = steps × action repeat"
        )
        return head, body, caption
    head = ["env", "method", "Ma et al. (reported)", "ours", "seeds", "frames"]
    body = [
        [
            r.env,
            r.group if not r.ma_column or r.ma_column == r.group else f"{r.group} (= {r.ma_column})",
            _pm(r.reported_mean, r.reported_std),
            _pm(r.ours_mean, r.ours_std),
            str(int(r.seeds)),
            _fmt(r.frames),
        ]
        for r in data.itertuples()
    ]
    caption = f"{MA_SOURCE}; ours: final {spec.get('metric', 'eval_return')}, mean ± std over seeds"
    return head, body, caption


def to_markdown(spec: dict[str, Any], data: pd.DataFrame) -> str:
    head, body, caption = _table_rows(spec, data)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    title = spec.get("title") or spec.get("name", "")
    return (f"**{title}**: " if title else "") + caption + "\n\n" + "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    out = str(text)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("±", r"$\pm$")):
        out = out.replace(a, b)
    return out


def to_latex(spec: dict[str, Any], data: pd.DataFrame) -> str:
    head, body, caption = _table_rows(spec, data)
    lines = [
        "% generated by `neuroplastic figures`; do not edit",
        r"\begin{tabular}{ll" + "r" * (len(head) - 2) + "}",
        r"\toprule",
        " & ".join(_tex(h) for h in head) + r" \\",
        r"\midrule",
        *(" & ".join(_tex(c) for c in row) + r" \\" for row in body),
        r"\bottomrule",
        r"\end{tabular}",
        f"% {_tex(caption)}",
    ]
    return "\n".join(lines) + "\n"


def write(spec: dict[str, Any], data: pd.DataFrame, prefix: Path) -> list[Path]:
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    csv, md, tex = prefix.with_suffix(".csv"), prefix.with_suffix(".md"), prefix.with_suffix(".tex")
    data.to_csv(csv, index=False, float_format="%.6g", lineterminator="\n")
    md.write_text(to_markdown(spec, data))
    tex.write_text(to_latex(spec, data))
    return [csv, md, tex]
