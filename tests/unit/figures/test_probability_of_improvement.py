from __future__ import annotations

import pytest

from neuroplastic import figures
from tests.unit.figures.synthetic import STATS

EXAMPLE = {"kind": "probability_of_improvement", "experiment": "exp", "labels": ["TD3", "NE"], "target": "NE"}


def test_ne_beats_td3_with_certainty(aggregates):
    data = figures.compute(figures.parse_spec({**EXAMPLE, "stats": STATS}), aggregates)
    assert data[["group", "other"]].values.tolist() == [["NE", "TD3"]]
    assert data["point"].item() == pytest.approx(1.0)
    reverse = figures.compute(figures.parse_spec({**EXAMPLE, "stats": STATS, "target": "TD3"}), aggregates)
    assert reverse["point"].item() == pytest.approx(0.0)
