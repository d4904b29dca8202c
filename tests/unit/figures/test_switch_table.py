"""Adaptive RR switch steps (visual-RL study) on synthetic tidy tables."""

from __future__ import annotations

import math

import pytest

from neuroplastic import figures
from neuroplastic.figures import tables
from neuroplastic.figures.kinds import switch_table

EXAMPLE = {"kind": "switch_table", "experiment": "drq_arr", "labels": ["Adaptive RR"]}


def test_switch_table_counts_runs_and_switches(aggregates, tmp_path):
    spec = figures.parse_spec(EXAMPLE)
    data = figures.compute(spec, aggregates)
    quad = data[data.env == "dmc-pixels:quadruped-run"].iloc[0]
    # seeds switch at 1500, 2000, 2500 (seed 2 switches at 2500 and is logged from 3000 on)
    assert (quad.runs, quad.switched) == (3, 3)
    assert quad.mean_step == 2000 and quad.min_step == 1500 and quad.max_step == 2500
    assert quad.mean_frames == 4000
    cheetah = data[data.env == "dmc-pixels:cheetah-run"].iloc[0]
    assert (cheetah.runs, cheetah.switched) == (3, 2) and cheetah.mean_step == 1750
    md = tables.to_markdown(switch_table.render(spec, data))
    assert "| dmc-pixels:cheetah-run | Adaptive RR | 2 / 3 | 1,750 | 1,500 – 2,000 | 3,500 |" in md
    # a variant that never switched renders dashes, also after the CSV round trip
    never = data.assign(switched=0, mean_step=math.nan, min_step=math.nan, max_step=math.nan, mean_frames=math.nan)
    figures.write_data(never, tmp_path / "never.csv")
    md = tables.to_markdown(switch_table.render(spec, figures.read_data(tmp_path / "never.csv")))
    assert "| Adaptive RR | 0 / 3 | – | – | – |" in md


def test_frames_per_step_must_be_positive():
    with pytest.raises(figures.FigureSpecError, match="frames_per_step: Input should be greater than or equal to 1"):
        figures.parse_spec({**EXAMPLE, "frames_per_step": 0})
