from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroplastic import figures
from tests.unit.figures.synthetic import STATS

EXAMPLE = {"kind": "curves", "experiment": "exp", "metrics": ["eval_return", "fau.critic"], "labels": ["TD3", "NE"]}


def _spec(**over):
    return figures.parse_spec({**EXAMPLE, "stats": STATS, **over})


def test_curves_data_is_the_mean_over_seeds(aggregates):
    data = figures.compute(_spec(), aggregates)
    curves = pd.read_parquet(aggregates / "exp" / "curves.parquet")
    cell = curves[(curves["variant"] == "NE") & (curves["env"] == "E2") & (curves["metric"] == "eval_return")]
    expected = cell.groupby("step")["value"].mean()
    got = data[(data["group"] == "NE") & (data["env"] == "E2") & (data["metric"] == "eval_return")]
    assert got["point"].to_numpy() == pytest.approx(expected.to_numpy())
    assert (got["ci_low"] <= got["point"]).all() and (got["point"] <= got["ci_high"]).all()
    fau = data[(data["group"] == "TD3") & (data["metric"] == "fau.critic")]
    assert fau["point"].to_numpy() == pytest.approx(np.full(len(fau), 0.45))  # mean of 0.3..0.6
    assert list(pd.unique(data["group"])) == ["TD3", "NE"]


def test_metric_not_logged_is_a_clear_error(aggregates):
    with pytest.raises(figures.FigureError, match=r"density\.critic.*not logged"):
        figures.compute(_spec(metrics=["density.critic"]), aggregates)


def test_curves_reject_a_statistic_without_a_curve_estimate():
    with pytest.raises(figures.FigureSpecError, match="statistic: Input should be 'mean', 'iqm' or 'median'"):
        _spec(statistic="optimality_gap")
