"""Visual-RL tables (Adaptive RR switch steps, Ma et al.'s Table 1 next to ours) on synthetic tidy tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from neuroplastic.analysis import figures, visual_rl

KEYS = ["experiment", "label", "variant", "env", "seed", "run_id"]


def _curves() -> pd.DataFrame:
    rows = []
    for env in ("dmc-pixels:quadruped-run", "dmc-pixels:cheetah-run"):
        for seed in range(3):
            for label in ("RR 0.5", "Adaptive RR"):
                rid = f"{env[-3:]}-{label[:2]}-{seed}"
                key = ["drq_arr", label, label, env, seed, rid]
                for step in (1000, 2000, 3000):
                    rows.append([*key, step, "eval_return", 100.0 * seed + step / 100])
                    rows.append([*key, step, "replay_ratio", 0.5])
                # Adaptive RR switches at step 1500 + 500·seed on quadruped; seed 2 never switches on cheetah
                if label == "Adaptive RR" and not (env.endswith("cheetah-run") and seed == 2):
                    switch = 1500 + 500 * seed
                    for step in (2000, 3000):
                        if step >= switch:
                            rows.append([*key, step, "adaptive_rr.switch_step", float(switch)])
    return pd.DataFrame(rows, columns=[*KEYS, "step", "metric", "value"])


def _final(curves: pd.DataFrame) -> pd.DataFrame:
    keys = [*KEYS, "metric"]
    last = curves.sort_values("step").groupby(keys, sort=False).agg(value=("value", "last"), last_step=("step", "max"))
    return last.reset_index()


def test_switch_table_counts_runs_and_switches(tmp_path):
    spec = {"kind": "switch_table", "experiment": "drq_arr", "labels": ["Adaptive RR"]}
    data = visual_rl.compute(spec, _curves(), _final(_curves()))
    quad = data[data.env == "dmc-pixels:quadruped-run"].iloc[0]
    # seeds switch at 1500, 2000, 2500 (seed 2 switches at 2500 and is logged from 3000 on)
    assert (quad.runs, quad.switched) == (3, 3)
    assert quad.mean_step == 2000 and quad.min_step == 1500 and quad.max_step == 2500
    assert quad.mean_frames == 4000
    cheetah = data[data.env == "dmc-pixels:cheetah-run"].iloc[0]
    assert (cheetah.runs, cheetah.switched) == (3, 2) and cheetah.mean_step == 1750
    md = visual_rl.to_markdown(spec, data)
    assert "| dmc-pixels:cheetah-run | Adaptive RR | 2 / 3 | 1,750 | 1,500 – 2,000 | 3,500 |" in md
    # a variant that never switched renders dashes, also after the CSV round trip
    never = data.assign(switched=0, mean_step=math.nan, min_step=math.nan, max_step=math.nan, mean_frames=math.nan)
    figures.write_data(never, tmp_path / "never.csv")
    md = visual_rl.to_markdown(spec, figures.read_data(tmp_path / "never.csv"))
    assert "| Adaptive RR | 0 / 3 | – | – | – |" in md


def test_reference_table_puts_ma_numbers_next_to_ours(tmp_path):
    spec = {
        "kind": "reference_table",
        "experiment": "drq_arr",
        "columns": {"RR 0.5": "RR 0.5", "Adaptive RR": "Adaptive RR"},
    }
    data = visual_rl.compute(spec, _curves(), _final(_curves()))
    row = data[(data.env == "dmc-pixels:quadruped-run") & (data.group == "Adaptive RR")].iloc[0]
    assert (row.reported_mean, row.reported_std) == (784, 53)  # Ma Table 1, Quadruped Run, Adaptive RR
    assert row.ours_mean == pytest.approx(130.0) and row.ours_std == pytest.approx(100.0) and row.seeds == 3
    assert row.frames == 6000
    cheetah = data[(data.env == "dmc-pixels:cheetah-run") & (data.group == "RR 0.5")].iloc[0]
    assert (cheetah.reported_mean, cheetah.reported_std) == (828, 59)
    # as in the workflow: figure data goes through CSV before it is rendered
    figures.write_data(data, tmp_path / "data.csv")
    data = figures.read_data(tmp_path / "data.csv")
    files = figures.render_to_files({**spec, "name": "ma_table1"}, data, tmp_path / "ma_table1")
    assert [f.suffix for f in files] == [".csv", ".md", ".tex"]
    md = (tmp_path / "ma_table1.md").read_text()
    assert "| dmc-pixels:quadruped-run | Adaptive RR | 784 ± 53 | 130 ± 100 | 3 | 6,000 |" in md
    assert r"784 $\pm$ 53" in (tmp_path / "ma_table1.tex").read_text()
    # same data → byte-identical files
    again = figures.render_to_files({**spec, "name": "ma_table1"}, data, tmp_path / "again")
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in again]


def test_unknown_env_or_column_has_no_reported_value():
    curves = _curves()
    curves["env"] = curves["env"].str.replace("quadruped-run", "walker-walk")
    spec = {"kind": "reference_table", "experiment": "drq_arr", "columns": {"Adaptive RR": "Adaptive RR"}}
    data = visual_rl.compute(spec, curves, _final(curves))
    walker = data[data.env == "dmc-pixels:walker-walk"]
    assert walker.reported_mean.map(math.isnan).all() and (walker.ma_task == "").all()


def test_spec_problems_name_bad_keys_and_columns():
    problems = visual_rl.spec_problems(
        {"kind": "reference_table", "experiment": "x", "columns": {"A": "RR 3"}, "tau": 1}
    )
    assert any("key 'tau' does not apply" in p for p in problems)
    assert any("columns.A: 'RR 3' is not a column" in p for p in problems)
    assert visual_rl.spec_problems({"kind": "switch_table", "experiment": "x", "frames_per_step": 2}) == []
    assert visual_rl.MA_TABLE1["Walker Run"]["RR 2 + ReDo"] == (734, 16)
