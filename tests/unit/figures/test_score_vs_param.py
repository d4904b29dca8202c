from __future__ import annotations

import pytest

from neuroplastic import figures
from tests.unit.figures.synthetic import STATS

EXAMPLE = {
    "kind": "score_vs_param",
    "experiment": "exp",
    "labels": ["Static", "SET"],
    "x": "sparsity",
    "hue": "family",
    "style": "distribution",
    "reference": {"label": "TD3"},
}


def test_score_vs_param_groups_by_hue_style_and_x(aggregates):
    data = figures.compute(figures.parse_spec({**EXAMPLE, "stats": STATS}), aggregates)
    assert len(data) == 2 * 2 * 2  # families × distributions × sparsities
    assert set(data["hue"]) == {"Static", "SET"} and set(data["style"]) == {"erk", "uniform"}
    assert sorted(set(data["x"])) == [0.5, 0.9]
    # Normalised by TD3: level (120 − 40 s) vs TD3's 100 → sparser is worse.
    s5 = data[(data["x"] == 0.5) & (data["hue"] == "SET")]["point"]
    s9 = data[(data["x"] == 0.9) & (data["hue"] == "SET")]["point"]
    assert (s5.to_numpy() > s9.to_numpy()).all()
    assert s5.iloc[0] == pytest.approx(1.0, abs=0.08)


def test_score_vs_param_needs_x():
    with pytest.raises(figures.FigureSpecError, match="missing key 'x' for kind score_vs_param"):
        figures.parse_spec({"kind": "score_vs_param", "experiment": "exp"})
