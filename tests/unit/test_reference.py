"""Published reference data: the DrQ-v2 summary is derived from the shipped per-seed curves and reproduces the
numbers computed from the official DrQ-v2 curves; TD3 endpoints and protocol notes are what the sources say."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from neuroplastic import reference

# (frames, mean, std) over seeds of the official DrQ-v2 `curves/` (facebookresearch/drqv2).
SPEC_DRQV2 = {
    "cheetah_run": [(1_000_000, 729, 41), (2_000_000, 845, 39)],
    "walker_run": [(1_000_000, 546, 108), (2_000_000, 634, 95)],
    "quadruped_run": [(1_000_000, 459, 71), (2_000_000, 586, 81)],
}


def test_shipped_drqv2_summary_is_derived_from_the_per_seed_curves():
    shipped = pd.read_csv(reference.DRQV2_SUMMARY)
    derived = reference.summarise_per_seed(pd.read_csv(reference.DRQV2_PER_SEED))
    pd.testing.assert_frame_equal(shipped, derived, check_dtype=False)


@pytest.mark.parametrize("task", sorted(SPEC_DRQV2))
def test_drqv2_summary_reproduces_the_spec_numbers(task):
    env = "dmc-pixels:" + task.replace("_", "-")
    pts = reference.points("drqv2_dmc", env).set_index("step")
    for frames, mean, std in SPEC_DRQV2[task]:
        row = pts.loc[frames // 2]  # our x is agent steps: action repeat 2
        # The per-seed values are truncated to 2 decimals, so the rounded mean may move by at most 1.
        assert abs(row["mean"] - mean) <= 1.0, (task, frames, row["mean"])
        assert abs(row["std"] - std) <= 1.0, (task, frames, row["std"])
        assert row["n_seeds"] == (8 if task == "quadruped_run" else 10)


def test_drqv2_std_is_across_seeds_with_ddof_0():
    per_seed = pd.DataFrame({"task": ["t"] * 3, "frame": [0] * 3, "episode_reward": [1.0, 2.0, 3.0]})
    out = reference.summarise_per_seed(per_seed).iloc[0]
    assert out["mean"] == 2.0 and out["n_seeds"] == 3
    assert out["std"] == round(math.sqrt(2 / 3), 2)


def test_td3_endpoints_and_their_protocol():
    t1 = reference.points("td3_paper_table1", "HalfCheetah-v4")
    assert t1.to_dict("records") == [{"step": 1_000_000, "mean": 9636.95, "std": 859.07, "n_seeds": 10}]
    assert reference.points("td3_curves_final", "Hopper-v5")["mean"].tolist() == [3390.8]
    assert math.isnan(reference.points("td3_curves_last10", "Walker2d-v4")["std"].iloc[0])
    assert reference.points("cleanrl_td3", "Humanoid-v4")["n_seeds"].tolist() == [3]
    assert reference.points("td3_paper_table1", "Humanoid-v4").empty
    assert reference.points("td3_paper_table1", "dmc:cheetah-run").empty
    notes = " | ".join(reference.protocol_notes("td3_curves_final", "HalfCheetah-v4"))
    assert "reference on v1 envs, ours on v4" in notes and "endpoint" in notes and "400-300" in notes
    cleanrl = " | ".join(reference.protocol_notes("cleanrl_td3", "HalfCheetah-v4"))
    assert "training return" in cleanrl and "v1" not in cleanrl


def test_task_keys_and_unknown_source():
    assert reference.task_of("HalfCheetah-v4") == "HalfCheetah"
    assert reference.task_of("dmc-pixels:walker-run") == "walker_run"
    assert reference.task_of("dmc:walker-run") is None
    assert reference.task_of("cycling") is None
    with pytest.raises(reference.ReferenceError, match="unknown reference 'td4'"):
        reference.source("td4")


def test_ma_table1_is_read_from_the_data_file():
    from neuroplastic.figures.kinds.reference_table import MA_COLUMNS

    table = reference.ma_table1()
    assert sorted(table) == ["Cheetah Run", "Quadruped Run", "Walker Run"]
    assert all(tuple(cols) == MA_COLUMNS for cols in table.values())
    assert table["Quadruped Run"]["Adaptive RR"] == (784.0, 53.0)
    with pytest.raises(reference.ReferenceError, match="a table of methods"):
        reference.points("ma2024_table1", "dmc-pixels:walker-run")


# The summary table of the curves' README (mean ± std with ddof 0; median; min-max), Hopper and HalfCheetah.
AUTHOR_CURVES_SUMMARY = {
    ("Hopper-v4", 50_000): (285, 69, 283, 180, 431),
    ("Hopper-v4", 100_000): (659, 752, 424, 25, 2790),
    ("Hopper-v4", 300_000): (2410, 900, 2579, 912, 3547),
    ("HalfCheetah-v4", 300_000): (7697, 727, 7657, 6196, 9049),
    ("Walker2d-v4", 300_000): (3335, 957, 3289, 1294, 4986),
}


@pytest.mark.parametrize(("env", "step"), sorted(AUTHOR_CURVES_SUMMARY))
def test_author_curves_reproduce_their_published_summary(env, step):
    mean, std, median, low, high = AUTHOR_CURVES_SUMMARY[(env, step)]
    pts = reference.points("td3_author_curves", env).set_index("step").loc[step]
    band = reference.band("td3_author_curves", env).set_index("step").loc[step]
    assert (round(pts["mean"]), round(pts["std"]), pts["n_seeds"]) == (mean, std, 10)
    assert (round(band["median"]), round(band["min"]), round(band["max"])) == (median, low, high)
    assert band["min"] <= band["q25"] <= band["median"] <= band["q75"] <= band["max"]


def test_author_curves_cover_every_5k_step_to_1m_for_the_four_tasks():
    for env in ("HalfCheetah-v4", "Hopper-v5", "Walker2d-v4", "Ant-v4"):
        seeds = reference.per_seed("td3_author_curves", env)
        assert sorted(seeds["seed"].unique()) == list(range(10))
        assert sorted(seeds["step"].unique()) == list(range(0, 1_000_001, 5_000))
    assert reference.band("td3_author_curves", "Humanoid-v4").empty
    assert reference.points("td3_author_curves", "dmc:cheetah-run").empty
    q = reference.band("td3_author_curves", "Hopper-v4").set_index("step").loc[100_000]
    # numpy's linear quantiles of the 10 seeds' returns at 100k.
    assert (q["q25"], q["q75"]) == pytest.approx((290.49, 750.7525))
    notes = " | ".join(reference.protocol_notes("td3_author_curves", "Hopper-v4"))
    assert "reference on v1 envs, ours on v4" in notes and "400-300" in notes and "episode end" in notes
    with pytest.raises(reference.ReferenceError, match="no per-seed curves"):
        reference.per_seed("td3_curves_final", "Hopper-v4")
