"""reference_gap_table: at each reference checkpoint our mean with its CI, theirs, and the gap in units of
their std; checkpoints beyond our runs are not reached and have no gap."""

from __future__ import annotations

import math

import pytest

from neuroplastic import figures, reference
from neuroplastic.figures.base import AggregateTables
from tests.unit.figures.test_reference_curves import TD3_REFS, example_tables, spec_of, write_example_tables

EXAMPLE = {"kind": "reference_gap_table", "experiment": "val", "references": [*TD3_REFS, "drqv2_dmc"]}
__all__ = ["EXAMPLE", "write_example_tables"]


def test_gap_is_in_units_of_the_reference_std_and_unreached_checkpoints_have_none():
    data = figures.compute(spec_of("reference_gap_table"), example_tables())
    row = data[(data["env"] == "HalfCheetah-v4") & (data["reference"] == "TD3 authors' curves @1M")].iloc[0]
    assert row["ours_mean"] == pytest.approx(9000.0)
    assert row["gap_std"] == pytest.approx((9000.0 - 9566.6) / 832.9)
    assert row["seeds"] == 3 and row["ref_seeds"] == 10
    assert "training return" in data[data["reference"] == "CleanRL TD3 (training return)"]["protocol"].iloc[0]

    short = example_tables()
    curves, final = short.curves("val"), short.final("val")
    cut = AggregateTables(frames={"val": (curves[curves["step"] <= 500_000], final)})
    row = figures.compute(spec_of("reference_gap_table"), cut).iloc[0]
    assert math.isnan(row["ours_mean"]) and math.isnan(row["gap_std"])
    assert row["ours_last_step"] == 500_000


def test_drqv2_checkpoints_use_our_last_logged_step_before_them():
    spec = spec_of("reference_gap_table", references=["drqv2_dmc"], checkpoints=[600_000, 1_000_000])
    data = figures.compute(spec, example_tables()).set_index("step")
    assert data.loc[600_000, "ours_step"] == 500_000  # our evals are every 250k steps
    assert data.loc[1_000_000, "ours_mean"] == pytest.approx(800.0)
    ref = reference.points("drqv2_dmc", "dmc-pixels:cheetah-run").set_index("step").loc[1_000_000]
    assert data.loc[1_000_000, "gap_std"] == pytest.approx((800.0 - ref["mean"]) / ref["std"])


def test_rendering_is_deterministic(tmp_path):
    tables = example_tables()
    for kind in ("reference_curves", "reference_gap_table"):
        spec = spec_of(kind, references=[*TD3_REFS, "drqv2_dmc"], name=kind)
        data = figures.compute(spec, tables)
        figures.write_data(data, tmp_path / f"{kind}.csv")
        back = figures.read_data(tmp_path / f"{kind}.csv")
        first = figures.render_to_files(spec, back, tmp_path / "a" / kind)
        second = figures.render_to_files(spec, back, tmp_path / "b" / kind)
        assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    md = (tmp_path / "a" / "reference_gap_table.md").read_text()
    assert "−0.68" in md or "-0.68" in md  # (9000 − 9566.6) / 832.9


def test_author_band_rows_say_where_our_mean_and_seeds_lie_against_the_range(tmp_path):
    from tests.unit.figures.test_reference_curves import hopper_tables

    # Hopper 100k: authors' range 25-2790; 300k: 912-3547 (their README). Ours: inside at 100k, below at 300k.
    ours = {100_000: [300.0, 400.0, 500.0], 200_000: [350.0, 450.0, 3600.0], 300_000: [405.0, 615.0, 1000.0]}
    spec = spec_of("reference_gap_table", references=["td3_author_curves"], checkpoints=[100_000, 300_000, 400_000])
    data = figures.compute(spec, hopper_tables(ours)).set_index("step")
    assert data.loc[100_000, "position"] == "inside" and data.loc[100_000, "ours_mean"] == pytest.approx(400.0)
    assert data.loc[100_000, "ours_seeds"] == "300.0 / 400.0 / 500.0"
    assert data.loc[300_000, "position"] == "below"
    assert (data.loc[300_000, "seeds_below"], data.loc[300_000, "seeds_above"]) == (2, 0)
    assert (data.loc[300_000, "ref_min"], data.loc[300_000, "ref_max"]) == pytest.approx((912.014, 3547.25))
    assert data.loc[300_000, "ref_median"] == pytest.approx(2578.955)
    assert data.loc[400_000, "position"] == "" and math.isnan(data.loc[400_000, "ours_mean"])
    # A mean above the highest seed is `above`.
    from neuroplastic.figures.kinds.reference_gap_table import position

    assert [position(v, 25.0, 2790.0) for v in (10.0, 25.0, 2790.0, 2791.0)] == ["below", "inside", "inside", "above"]
    figures.write_data(data.reset_index(), tmp_path / "gap.csv")
    back = figures.read_data(tmp_path / "gap.csv")
    md = figures.render_to_files(spec.model_copy(update={"name": "gap"}), back, tmp_path / "gap")
    text = next(p for p in md if p.suffix == ".md").read_text()
    assert "below (seeds below 2/3, above 0/3)" in text and "2579 [1579, 3187] (912–3547)" in text
    assert "not reached" in text
