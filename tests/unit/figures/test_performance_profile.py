from __future__ import annotations

import numpy as np
import pytest

from neuroplastic import figures
from tests.unit.figures.synthetic import STATS

EXAMPLE = {"kind": "performance_profile", "experiment": "exp", "labels": ["TD3", "NE"]}


def test_profile_is_the_fraction_of_runs_above_tau(aggregates):
    spec = figures.parse_spec({**EXAMPLE, "stats": STATS, "tau": {"min": 0.0, "max": 3.0, "num": 7}})
    data = figures.compute(spec, aggregates)
    ne = data[data["group"] == "NE"]
    assert ne["tau"].tolist() == pytest.approx(np.linspace(0, 3, 7).tolist())
    assert ne["point"].iloc[0] == 1.0 and ne["point"].iloc[-1] == 0.0
    assert (np.diff(ne["point"].to_numpy()) <= 0).all()
    # NE (normalised ≈ 1.5) stays above 1.0 where TD3 (≈ 1) has dropped to about half its runs
    at_one = data[data["tau"] == 1.0].set_index("group")["point"]
    assert at_one["NE"] == 1.0 and at_one["TD3"] < 0.9
