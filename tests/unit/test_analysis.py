"""Aggregation and statistics on synthetic run directories and tidy tables (no training). The figure kinds
are tested in tests/unit/figures/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuroplastic import config, runlog, runs
from neuroplastic.analysis import aggregate, stats
from tests.conftest import tiny_config

# ---------------------------------------------------------------------------------------------------------------
# synthetic run directories


def _fake_run(runs_dir: Path, seed: int, env: str, returns: list[float], extra: dict | None = None) -> str:
    """A complete run directory whose eval_return at step 300·k is returns[k-1]; fau.critic = 0.5 + seed/10."""
    cfg = runs.resolve(tiny_config(seed=seed, env=env, steps=300 * len(returns), eval_every=300, **(extra or {})))
    rid = config.run_id(cfg)
    d = runs_dir / rid
    d.mkdir(parents=True)
    (d / runlog.CONFIG_JSON).write_text(json.dumps(json.loads(config.canonical_json(cfg))))
    rows = []
    for k, r in enumerate(returns, 1):
        rows += [(300 * k, "eval_return", float(r)), (300 * k, "fau.critic", 0.5 + seed / 10)]
    runlog.write_parquet(rows, d / runlog.METRICS_PARQUET)
    (d / runlog.DONE).write_text(json.dumps({"run_id": rid, "rows": len(rows)}))
    return rid


def _table(tmp_path: Path, members: list[dict]) -> Path:
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"experiment": "exp", "members": members}))
    return path


@pytest.fixture
def two_variant_runs(tmp_path):
    """Variants A (returns 10, 20, 30 + seed) and B (returns 5, 5, 5 + seed), 3 seeds, one env."""
    runs = tmp_path / "runs"
    members = []
    for label, base in (("A", [10, 20, 30]), ("B", [5, 5, 5])):
        for seed in range(3):
            # Variant B differs in a run key so that the two variants have distinct run ids.
            extra = {"eval_episodes": 2} if label == "B" else {}
            rid = _fake_run(runs, seed, "Hopper-v4", [b + seed for b in base], extra)
            members.append(
                {
                    "experiment": "exp",
                    "label": label,
                    "variant": label,
                    "env": "Hopper-v4",
                    "seed": seed,
                    "run_id": rid,
                    "tags": {"x": 1.0 if label == "A" else 2.0},
                }
            )
    return _table(tmp_path, members), runs, members


def test_aggregate_writes_tidy_curves_and_final_means(two_variant_runs, tmp_path):
    table, runs, _ = two_variant_runs
    curves, final = aggregate.aggregate_experiment(table, runs, final_fraction=0.5)
    assert list(curves.columns) == [*aggregate.KEY_COLUMNS, "tag_x", "step", "metric", "value"]
    assert len(curves) == 6 * 3 * 2  # runs × points × metrics
    a0 = final[(final["variant"] == "A") & (final["seed"] == 0) & (final["metric"] == "eval_return")]
    # last ⌈0.5·3⌉ = 2 points of 10, 20, 30 → 25
    assert a0["value"].item() == pytest.approx(25.0) and a0["n_points"].item() == 2
    aggregate.run(table, runs, tmp_path / "agg", 0.5)
    assert (tmp_path / "agg" / "curves.parquet").is_file() and (tmp_path / "agg" / "final.csv").is_file()
    first = (tmp_path / "agg" / "final.csv").read_bytes()
    aggregate.run(table, runs, tmp_path / "agg", 0.5)
    assert (tmp_path / "agg" / "final.csv").read_bytes() == first


def test_aggregate_missing_done_names_the_run(two_variant_runs):
    table, runs, members = two_variant_runs
    victim = members[4]["run_id"]
    (runs / victim / "done").unlink()
    with pytest.raises(aggregate.AggregationError, match=victim) as err:
        aggregate.aggregate_experiment(table, runs)
    assert "seed 1" in str(err.value) and "done" in str(err.value)


def test_aggregate_truncated_parquet_names_the_run(two_variant_runs):
    table, runs, members = two_variant_runs
    victim = members[1]["run_id"]
    path = runs / victim / runlog.METRICS_PARQUET
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(aggregate.AggregationError, match=f"run {victim}.*corrupt"):
        aggregate.aggregate_experiment(table, runs)


def test_aggregate_missing_evaluations_is_an_error(two_variant_runs):
    table, runs, members = two_variant_runs
    victim = members[2]["run_id"]
    path = runs / victim / runlog.METRICS_PARQUET
    df = pd.read_parquet(path)
    df = df[df["step"] < 900]
    runlog.write_parquet(list(df.itertuples(index=False, name=None)), path)
    (runs / victim / "done").write_text(json.dumps({"run_id": victim, "rows": len(df)}))
    with pytest.raises(aggregate.AggregationError, match=f"{victim}.*2 eval_return points, expected 3"):
        aggregate.aggregate_experiment(table, runs)


def test_aggregate_row_count_mismatch_is_truncation(two_variant_runs):
    table, runs, members = two_variant_runs
    victim = members[0]["run_id"]
    (runs / victim / "done").write_text(json.dumps({"run_id": victim, "rows": 99}))
    with pytest.raises(aggregate.AggregationError, match=f"{victim}.*truncated"):
        aggregate.aggregate_experiment(table, runs)


# ---------------------------------------------------------------------------------------------------------------
# statistics


def test_interval_estimates_are_reproducible_despite_global_rng_use():
    rng = np.random.default_rng(1)
    scores = {"A": rng.normal(1, 0.3, (5, 3)), "B": rng.normal(1.3, 0.3, (5, 3))}
    first = stats.interval_estimates(scores, list(stats.STATISTICS), 300, 0.95, seed=7)
    np.random.random(1000)  # unrelated global-RNG use between the calls must not change the CIs
    second = stats.interval_estimates(scores, list(stats.STATISTICS), 300, 0.95, seed=7)
    pd.testing.assert_frame_equal(first, second)
    other_seed = stats.interval_estimates(scores, list(stats.STATISTICS), 300, 0.95, seed=8)
    assert not np.array_equal(first["ci_low"].to_numpy(), other_seed["ci_low"].to_numpy())
    # A label's interval does not depend on the other labels in the call.
    alone = stats.interval_estimates({"A": scores["A"]}, list(stats.STATISTICS), 300, 0.95, seed=7)
    pd.testing.assert_frame_equal(alone, first[first["group"] == "A"].reset_index(drop=True))
    iqm = first[(first["group"] == "A") & (first["statistic"] == "iqm")].iloc[0]
    from scipy.stats import trim_mean

    assert iqm["point"] == pytest.approx(trim_mean(scores["A"].reshape(-1), 0.25))
    assert iqm["ci_low"] <= iqm["point"] <= iqm["ci_high"]


def test_probability_of_improvement_dominance_and_profiles():
    a = np.arange(12, dtype=float).reshape(4, 3) + 100
    b = np.arange(12, dtype=float).reshape(4, 3)
    poi = stats.probability_of_improvement({"A": a, "B": b}, "A", 200, 0.95, 0)
    assert poi["point"].item() == pytest.approx(1.0) and poi["other"].item() == "B"
    prof = stats.performance_profiles({"B": b}, np.array([-1.0, 5.5, 100.0]), 100, 0.95, 0)
    assert prof["point"].tolist() == pytest.approx([1.0, 6 / 12, 0.0])


def test_normalisation_and_reference_errors():
    final = pd.DataFrame(
        {
            "label": ["TD3", "TD3", "NE", "NE"],
            "variant": ["TD3", "TD3", "NE", "NE"],
            "env": ["E", "E", "E", "E"],
            "seed": [0, 1, 0, 1],
            "metric": ["eval_return"] * 4,
            "value": [100.0, 300.0, 400.0, 600.0],
        }
    )
    ref = stats.reference_means(final, "TD3", ["E"], "eval_return")
    assert ref == {"E": 200.0}
    scores = stats.score_matrices(final, ["NE"], ["E"], "eval_return")
    assert stats.normalise(scores, ref, ["E"])["NE"].ravel().tolist() == [2.0, 3.0]
    bad = final.assign(value=[-1.0, -3.0, 1.0, 1.0])
    with pytest.raises(stats.StatsError, match="non-positive"):
        stats.reference_means(bad, "TD3", ["E"], "eval_return")
    with pytest.raises(stats.StatsError, match="no 'eval_return' scores for variant 'X'"):
        stats.score_matrices(final, ["X"], ["E"], "eval_return")
