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


def test_score_vs_param_normalised_by_published_scores(aggregates, monkeypatch):
    # Both envs get (low, high) = (10, 110): the normalised score is (x − 10)/100, and the IQM commutes with it.
    from neuroplastic.figures import base

    monkeypatch.setattr(base, "published_scores", lambda name, env: (10.0, 110.0))
    raw = figures.compute(figures.parse_spec({**EXAMPLE, "normalize": False, "stats": STATS}), aggregates)
    spec = {**EXAMPLE, "reference": {"scores": "atari_human_random"}, "stats": STATS}
    human = figures.compute(figures.parse_spec(spec), aggregates)
    assert human["point"].to_numpy() == pytest.approx((raw["point"].to_numpy() - 10.0) / 100.0)


def test_published_atari_scores_per_env():
    from neuroplastic.figures.base import published_scores

    assert published_scores("atari_human_random", "ALE/Pong-v5") == (-20.7, 14.6)
    assert published_scores("atari_human_random", "ALE/SpaceInvaders-v5") == (148.0, 1668.7)
    assert published_scores("atari_human_random", "Hopper-v4") is None


def test_groups_outside_the_palette_get_distinct_colours():
    from neuroplastic.figures import draw

    # A config palette that uses every default colour but one: the groups it does not name still differ.
    palette = {f"L{i}": c for i, c in enumerate(draw.PALETTE[:-1])}
    got = draw.colors(["L0", "A", "B", "C"], palette)
    assert got["L0"] == draw.PALETTE[0]
    assert got["A"] == draw.PALETTE[-1]
    assert len({got["A"], got["B"], got["C"]}) == 3
