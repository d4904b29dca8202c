"""`aggregate_table`: variant × statistic (IQM, mean, median, optimality gap of normalised final scores),
cell = point [bootstrap CI], the best per statistic in bold (lowest optimality gap). Figure data as
`aggregate_intervals`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuroplastic.figures import draw, tables
from neuroplastic.figures.base import FigureKind
from neuroplastic.figures.kinds import aggregate_intervals


class Spec(aggregate_intervals.Spec):
    pass


def render(spec: Spec, data: pd.DataFrame) -> tables.Table:
    groups, statistics = list(pd.unique(data["group"])), list(pd.unique(data["statistic"]))
    best = set()
    for stat, d in data.groupby("statistic", sort=False):
        idx = d["point"].idxmin() if stat == "optimality_gap" else d["point"].idxmax()
        best.add((d.loc[idx, "group"], stat))
    nd = tables.decimals(data[["point", "ci_low", "ci_high"]].to_numpy(dtype=np.float64))
    cells = {
        (r.group, r.statistic): tables.interval_cell(r.point, r.ci_low, r.ci_high, nd, (r.group, r.statistic) in best)
        for r in data.itertuples()
    }
    return tables.Table(
        head=["method", *(draw.STATISTIC_NAMES.get(s, s) for s in statistics)],
        rows=[[g, *(cells.get((g, s)) for s in statistics)] for g in groups],
        caption=f"aggregate normalised final {spec.metric} [95% stratified-bootstrap CI]",
    )


KIND = FigureKind("aggregate_table", Spec, aggregate_intervals.compute, render, table=True)
