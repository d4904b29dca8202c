from __future__ import annotations

import pandas as pd
import pytest
from scipy.stats import trim_mean

from neuroplastic import figures
from tests.unit.figures.synthetic import STATS

EXAMPLE = {"kind": "aggregate_intervals", "experiment": "exp", "labels": ["TD3", "NE"]}


def test_iqm_is_the_trimmed_mean_of_normalised_scores(aggregates):
    data = figures.compute(figures.parse_spec({**EXAMPLE, "stats": STATS}), aggregates)
    assert list(pd.unique(data["statistic"])) == ["iqm", "mean", "median", "optimality_gap"]
    final = pd.read_parquet(aggregates / "exp" / "final.parquet")
    final = final[final["metric"] == "eval_return"]
    td3 = final[final["label"] == "TD3"].groupby("env")["value"].mean()
    ne = final[final["label"] == "NE"]
    normalised = ne["value"].to_numpy() / ne["env"].map(td3).to_numpy()
    iqm = data[(data["group"] == "NE") & (data["statistic"] == "iqm")].iloc[0]
    assert iqm["point"] == pytest.approx(trim_mean(normalised, 0.25))
    assert iqm["ci_low"] <= iqm["point"] <= iqm["ci_high"] and iqm["runs"] == 4 and iqm["tasks"] == 2
