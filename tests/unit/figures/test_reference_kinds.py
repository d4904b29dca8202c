"""reference_curves and reference_gap_table: our curves next to the published references at the same x, the
gap in units of the reference std, checkpoints beyond our runs marked, protocol notes carried to the output."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from neuroplastic import figures, reference
from neuroplastic.figures.base import AggregateTables
from tests.unit.figures.synthetic import KEYS, STATS

TD3_REFS = ["td3_curves_final", "cleanrl_td3"]


def _tables() -> AggregateTables:
    """`val`: TD3 on HalfCheetah-v4 for 1M steps (3 seeds, evals every 250k) and DrQ-v2 on pixel cheetah-run for
    1M agent steps (= 2M frames); returns = seed offset + a fixed curve, so means are known exactly."""
    rows = []
    for env, label, level in (("HalfCheetah-v4", "TD3", 9000.0), ("dmc-pixels:cheetah-run", "DrQ-v2", 800.0)):
        for seed in range(3):
            for step in (250_000, 500_000, 750_000, 1_000_000):
                value = level * step / 1_000_000 + 10.0 * (seed - 1)
                rows.append(["val", label, label, env, seed, f"{env[:3]}{seed}", step, "eval_return", value])
    curves = pd.DataFrame(rows, columns=[*KEYS, "step", "metric", "value"])
    final = curves[curves["step"] == 1_000_000].drop(columns="step").assign(n_points=1)
    return AggregateTables(frames={"val": (curves, final)})


def _spec(kind: str, **over):
    return figures.parse_spec({"kind": kind, "experiment": "val", "references": TD3_REFS, "stats": STATS, **over})


def test_reference_curves_data_holds_ours_and_the_references_at_their_steps():
    data = figures.compute(_spec("reference_curves", references=[*TD3_REFS, "drqv2_dmc"]), _tables())
    ours = data[(data["kind"] == "ours") & (data["env"] == "HalfCheetah-v4")]
    assert ours["point"].tolist() == pytest.approx([2250.0, 4500.0, 6750.0, 9000.0])
    td3 = data[(data["source"] == "td3_curves_final") & (data["env"] == "HalfCheetah-v4")].iloc[0]
    assert (td3["kind"], td3["step"], td3["point"]) == ("endpoint", 1_000_000, 9566.6)
    assert (td3["ci_low"], td3["ci_high"]) == pytest.approx((9566.6 - 832.9, 9566.6 + 832.9))
    assert "reference on v1 envs, ours on v4" in td3["note"]
    drq = data[(data["source"] == "drqv2_dmc") & (data["env"] == "dmc-pixels:cheetah-run")].set_index("step")
    # 2M frames = 1M agent steps at action repeat 2; the curve continues beyond our runs (to 2.98M frames).
    assert drq.loc[1_000_000, "point"] == reference.points("drqv2_dmc", "dmc-pixels:cheetah-run").set_index(
        "step"
    ).loc[1_000_000, "mean"]
    assert drq.index.max() == 1_490_000
    assert data[(data["env"] == "HalfCheetah-v4") & (data["source"] == "drqv2_dmc")].empty


def test_gap_is_in_units_of_the_reference_std_and_unreached_checkpoints_have_none():
    data = figures.compute(_spec("reference_gap_table"), _tables())
    row = data[(data["env"] == "HalfCheetah-v4") & (data["reference"] == "TD3 authors' curves @1M")].iloc[0]
    assert row["ours_mean"] == pytest.approx(9000.0)
    assert row["gap_std"] == pytest.approx((9000.0 - 9566.6) / 832.9)
    assert row["seeds"] == 3 and row["ref_seeds"] == 10
    assert "training return" in data[data["reference"] == "CleanRL TD3 (training return)"]["protocol"].iloc[0]

    short = _tables()
    curves, final = short.curves("val"), short.final("val")
    cut = AggregateTables(frames={"val": (curves[curves["step"] <= 500_000], final)})
    row = figures.compute(_spec("reference_gap_table"), cut).iloc[0]
    assert math.isnan(row["ours_mean"]) and math.isnan(row["gap_std"])


def test_drqv2_checkpoints_use_our_last_logged_step_before_them():
    spec = _spec("reference_gap_table", references=["drqv2_dmc"], checkpoints=[600_000, 1_000_000])
    data = figures.compute(spec, _tables()).set_index("step")
    assert data.loc[600_000, "ours_step"] == 500_000  # our evals are every 250k steps
    assert data.loc[1_000_000, "ours_mean"] == pytest.approx(800.0)
    ref = reference.points("drqv2_dmc", "dmc-pixels:cheetah-run").set_index("step").loc[1_000_000]
    assert data.loc[1_000_000, "gap_std"] == pytest.approx((800.0 - ref["mean"]) / ref["std"])


def test_rendering_is_deterministic(tmp_path):
    tables = _tables()
    for kind in ("reference_curves", "reference_gap_table"):
        spec = _spec(kind, references=[*TD3_REFS, "drqv2_dmc"], name=kind)
        data = figures.compute(spec, tables)
        figures.write_data(data, tmp_path / f"{kind}.csv")
        back = figures.read_data(tmp_path / f"{kind}.csv")
        first = figures.render_to_files(spec, back, tmp_path / "a" / kind)
        second = figures.render_to_files(spec, back, tmp_path / "b" / kind)
        assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    md = (tmp_path / "a" / "reference_gap_table.md").read_text()
    assert "−0.68" in md or "-0.68" in md  # (9000 − 9566.6) / 832.9


def test_unknown_reference_is_a_spec_problem():
    class Plan:
        config = {"experiments": {"val": {"envs": ["HalfCheetah-v4"]}}}

    spec = _spec("reference_curves", references=["td4", "drqv2_dmc"])
    problems = figures.KINDS["reference_curves"].check(spec, Plan())
    assert any("unknown reference 'td4'" in p for p in problems)
    assert any("'drqv2_dmc' has no numbers for any of the envs HalfCheetah-v4" in p for p in problems)
    assert np.isfinite(reference.points("td3_paper_table1", "HalfCheetah-v4")["std"]).all()
