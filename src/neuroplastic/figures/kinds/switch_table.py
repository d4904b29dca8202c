"""`switch_table`: when Adaptive RR switched from the low to the high replay ratio, per env and variant: runs,
how many switched, mean / min / max switch step, in agent steps and in frames (× `frames_per_step`, 2 on pixel
DMC). Input: the `curves` table, metric `adaptive_rr.switch_step` (logged from the switch on; a run without
it never switched). Figure data: [env, group, runs, switched, mean_step, min_step, max_step, mean_frames]."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import Field

from neuroplastic.figures import tables
from neuroplastic.figures.base import AggregateTables, FigureError, FigureKind, FigureSpec, own_curves
from neuroplastic.figures.kinds._visual import fmt, label_order, numeric, select

NUMERIC = ("runs", "switched", "mean_step", "min_step", "max_step", "mean_frames")


class Spec(FigureSpec):
    metric: str = "adaptive_rr.switch_step"
    frames_per_step: int = Field(default=2, ge=1)


def compute(spec: Spec, tables_: AggregateTables) -> pd.DataFrame:
    sel = select(spec, own_curves(spec, tables_))
    if sel.empty:
        raise FigureError(f"switch_table: no runs for labels {spec.labels} in experiment {spec.experiment!r}")
    rows = []
    for env in pd.unique(sel["env"]):
        for label in label_order(spec, sel):
            cell = sel[(sel["env"] == env) & (sel["label"] == label)]
            if cell.empty:
                continue
            runs = sorted(pd.unique(cell["run_id"]))
            switch = cell[cell["metric"] == spec.metric].sort_values("step").groupby("run_id")["value"].last()
            steps = switch.to_numpy(dtype=np.float64)
            some = len(steps) > 0
            rows.append(
                {
                    "env": env,
                    "group": label,
                    "runs": len(runs),
                    "switched": len(steps),
                    "mean_step": float(steps.mean()) if some else math.nan,
                    "min_step": float(steps.min()) if some else math.nan,
                    "max_step": float(steps.max()) if some else math.nan,
                    "mean_frames": float(steps.mean()) * spec.frames_per_step if some else math.nan,
                }
            )
    return pd.DataFrame(rows)


def render(spec: Spec, data: pd.DataFrame) -> tables.Table:
    data = numeric(data, NUMERIC)
    return tables.Table(
        head=["env", "method", "switched / runs", "mean switch step", "range (steps)", "mean switch frame"],
        rows=[
            [
                r.env,
                r.group,
                f"{int(r.switched)} / {int(r.runs)}",
                fmt(r.mean_step),
                f"{fmt(r.min_step)} – {fmt(r.max_step)}" if r.switched else "–",
                fmt(r.mean_frames),
            ]
            for r in data.itertuples()
        ],
        caption="Adaptive RR: env step (agent step) at which the replay ratio switched; frames = steps × action repeat",
        align="llrrrr",
    )


KIND = FigureKind("switch_table", Spec, compute, render, table=True)
