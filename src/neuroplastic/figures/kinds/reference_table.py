"""`reference_table`: the numbers Ma et al. (ICLR 2024) report in their Table 1 (average return after 2M env
steps = frames, 5 seeds, mean ± std over seeds; data/reference/ma2024_table1.csv) next to ours from the same runs:
our final `eval_return` (the workflow's final score: mean of the last `final_fraction` of evaluations), mean ±
std over seeds, with the number of seeds and the frames trained. `columns` maps our variant labels to Ma's
column names (default: the same names); envs are matched to Ma's tasks by `MA_TASK_ENVS`. Figure data: [env,
group, ma_task, ma_column, reported_mean, reported_std, ours_mean, ours_std, seeds, frames]."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from neuroplastic import reference
from neuroplastic.figures import tables
from neuroplastic.figures.base import AggregateTables, FigureError, FigureKind, FigureSpec, own_final
from neuroplastic.figures.kinds._visual import fmt, label_order, mean_std, numeric, select

# Ma et al., ICLR 2024, Table 1: average return after 2M env steps (frames), 5 seeds, mean ± std.
MA_COLUMNS = ("RR 0.5", "RR 0.5 + Reset", "RR 0.5 + ReDo", "RR 2", "RR 2 + Reset", "RR 2 + ReDo", "Adaptive RR")
# Ma et al., ICLR 2024, Table 1 (package data: src/neuroplastic/data/reference/ma2024_table1.csv).
MA_TABLE1: dict[str, dict[str, tuple[float, float]]] = reference.ma_table1()
MA_SOURCE = "Ma et al. (ICLR 2024), Table 1: return after 2M frames, 5 seeds, mean ± std"
MA_TASK_ENVS = {
    "Cheetah Run": "dmc-pixels:cheetah-run",
    "Walker Run": "dmc-pixels:walker-run",
    "Quadruped Run": "dmc-pixels:quadruped-run",
}
NUMERIC = ("reported_mean", "reported_std", "ours_mean", "ours_std", "seeds", "frames")


class Spec(FigureSpec):
    metric: str = "eval_return"
    # our label → Ma et al.'s column (default: the same name)
    columns: dict[str, Literal[MA_COLUMNS]] = Field(default_factory=dict)  # type: ignore[valid-type]
    frames_per_step: int = Field(default=2, ge=1)


def compute(spec: Spec, tables_: AggregateTables) -> pd.DataFrame:
    sel = select(spec, own_final(spec, tables_))
    sel = sel[sel["metric"] == spec.metric]
    env_task = {env: task for task, env in MA_TASK_ENVS.items()}
    rows = []
    for env in pd.unique(sel["env"]):
        task = env_task.get(env)
        for label in label_order(spec, sel):
            cell = sel[(sel["env"] == env) & (sel["label"] == label)]
            if cell.empty:
                continue
            column = spec.columns.get(label, label)
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
                    "frames": int(cell["last_step"].max()) * spec.frames_per_step if "last_step" in cell else math.nan,
                }
            )
    if not rows:
        raise FigureError(f"reference_table: no {spec.metric} in experiment {spec.experiment!r}")
    return pd.DataFrame(rows)


def render(spec: Spec, data: pd.DataFrame) -> tables.Table:
    data = numeric(data, NUMERIC)
    for col in ("ma_task", "ma_column"):
        data[col] = data[col].fillna("").astype(str)
    return tables.Table(
        head=["env", "method", "Ma et al. (reported)", "ours", "seeds", "frames"],
        rows=[
            [
                r.env,
                r.group if not r.ma_column or r.ma_column == r.group else f"{r.group} (= {r.ma_column})",
                mean_std(r.reported_mean, r.reported_std),
                mean_std(r.ours_mean, r.ours_std),
                str(int(r.seeds)),
                fmt(r.frames),
            ]
            for r in data.itertuples()
        ],
        caption=f"{MA_SOURCE}; ours: final {spec.metric}, mean ± std over seeds",
        align="llrrrr",
    )


KIND = FigureKind("reference_table", Spec, compute, render, table=True)
