"""`final_table`: env × variant, cell = mean final score over seeds [bootstrap CI], the best mean per env in
bold (normalised scores when `normalize`, default off). Figure data as `final_bars` without the aggregate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuroplastic.figures import tables
from neuroplastic.figures.base import AggregateTables, FigureKind, NormalizedSpec, final_scores
from neuroplastic.figures.kinds.final_bars import per_env_means


class Spec(NormalizedSpec):
    normalize: bool = False


def compute(spec: Spec, tables_: AggregateTables) -> pd.DataFrame:
    fs = final_scores(spec, tables_, spec.metric, spec.normalize)
    out = pd.concat(per_env_means(spec, fs.scores, fs.envs), ignore_index=True)
    return out[["env", "group", "statistic", "point", "ci_low", "ci_high", "runs"]]


def render(spec: Spec, data: pd.DataFrame) -> tables.Table:
    envs, groups = list(pd.unique(data["env"])), list(pd.unique(data["group"]))
    nd = tables.decimals(data[["point", "ci_low", "ci_high"]].to_numpy(dtype=np.float64))
    best = {(env, d.loc[d["point"].idxmax(), "group"]) for env, d in data.groupby("env", sort=False)}
    cells = {
        (r.env, r.group): tables.interval_cell(r.point, r.ci_low, r.ci_high, nd, (r.env, r.group) in best)
        for r in data.itertuples()
    }
    what = f"normalised final {spec.metric}" if spec.normalize else f"final {spec.metric}"
    return tables.Table(
        head=["env", *groups],
        rows=[[env, *(cells.get((env, g)) for g in groups)] for env in envs],
        caption=f"{what}: mean over seeds [95% stratified-bootstrap CI]",
    )


KIND = FigureKind("final_table", Spec, compute, render, table=True)
