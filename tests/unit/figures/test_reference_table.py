"""Ma et al.'s Table 1 next to ours (visual-RL study) on synthetic tidy tables."""

from __future__ import annotations

import math

import pytest

from neuroplastic import figures
from neuroplastic.figures.kinds import reference_table
from tests.unit.figures.synthetic import visual_curves, visual_final

EXAMPLE = {
    "kind": "reference_table",
    "experiment": "drq_arr",
    "columns": {"RR 0.5": "RR 0.5", "Adaptive RR": "Adaptive RR"},
}


def test_reference_table_puts_ma_numbers_next_to_ours(aggregates, tmp_path):
    spec = figures.parse_spec({**EXAMPLE, "name": "ma_table1"})
    data = figures.compute(spec, aggregates)
    row = data[(data.env == "dmc-pixels:quadruped-run") & (data.group == "Adaptive RR")].iloc[0]
    assert (row.reported_mean, row.reported_std) == (784, 53)  # Ma Table 1, Quadruped Run, Adaptive RR
    assert row.ours_mean == pytest.approx(130.0) and row.ours_std == pytest.approx(100.0) and row.seeds == 3
    assert row.frames == 6000
    cheetah = data[(data.env == "dmc-pixels:cheetah-run") & (data.group == "RR 0.5")].iloc[0]
    assert (cheetah.reported_mean, cheetah.reported_std) == (828, 59)
    # as in the workflow: figure data goes through CSV before it is rendered
    figures.write_data(data, tmp_path / "data.csv")
    files = figures.render_to_files(spec, figures.read_data(tmp_path / "data.csv"), tmp_path / "ma_table1")
    assert [f.suffix for f in files] == [".csv", ".md", ".tex"]
    md = (tmp_path / "ma_table1.md").read_text()
    assert "| dmc-pixels:quadruped-run | Adaptive RR | 784 ± 53 | 130 ± 100 | 3 | 6,000 |" in md
    assert r"784 $\pm$ 53" in (tmp_path / "ma_table1.tex").read_text()


def test_unknown_env_or_column_has_no_reported_value():
    curves = visual_curves()
    curves["env"] = curves["env"].str.replace("quadruped-run", "walker-walk")
    spec = figures.parse_spec({**EXAMPLE, "columns": {"Adaptive RR": "Adaptive RR"}})
    data = figures.compute(spec, figures.AggregateTables(frames={"drq_arr": (curves, visual_final(curves))}))
    walker = data[data.env == "dmc-pixels:walker-walk"]
    assert walker.reported_mean.map(math.isnan).all() and (walker.ma_task == "").all()


def test_spec_errors_name_bad_keys_and_columns():
    with pytest.raises(figures.FigureSpecError) as err:
        figures.parse_spec({"kind": "reference_table", "experiment": "x", "columns": {"A": "RR 3"}, "tau": 1})
    assert "unknown key 'tau' for kind reference_table" in err.value.problems
    assert any(p.startswith("columns.A: Input should be 'RR 0.5'") for p in err.value.problems)
    assert figures.parse_spec({"kind": "switch_table", "experiment": "x", "frames_per_step": 2}).frames_per_step == 2
    assert reference_table.MA_TABLE1["Walker Run"]["RR 2 + ReDo"] == (734, 16)
