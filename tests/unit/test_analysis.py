"""Aggregation, statistics, figures and tables on synthetic run directories and tidy tables (no training)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuroplastic import config, runlog
from neuroplastic.analysis import aggregate, figures, stats, tables
from tests.conftest import tiny_config

STATS = {
    "seed": 0,
    "reps": 300,
    "curve_reps": 100,
    "profile_reps": 100,
    "confidence": 0.95,
    "final_fraction": 0.5,
    "reference": {"experiment": None, "label": "TD3"},
}


# ---------------------------------------------------------------------------------------------------------------
# synthetic run directories


def _fake_run(runs_dir: Path, seed: int, env: str, returns: list[float], extra: dict | None = None) -> str:
    """A complete run directory whose eval_return at step 300·k is returns[k-1]; fau.critic = 0.5 + seed/10."""
    cfg = config.resolve(tiny_config(seed=seed, env=env, steps=300 * len(returns), eval_every=300, **(extra or {})))
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


# ---------------------------------------------------------------------------------------------------------------
# figures and tables from synthetic tidy tables


def _synthetic_aggregates(root: Path) -> None:
    """Experiment `exp`: 2 envs × 4 seeds; TD3, NE and sparse variants with sparsity/family/distribution tags."""
    rng = np.random.default_rng(0)
    variants = [("TD3", "TD3", {}), ("NE", "NE", {})]
    for family in ("Static", "SET"):
        for dist in ("erk", "uniform"):
            for s in (0.5, 0.9):
                variants.append(
                    (
                        family,
                        f"{family}[{dist},sparsity={s:g}]",
                        {"family": family, "distribution": dist, "sparsity": s},
                    )
                )
    rows = []
    for label, variant, tags in variants:
        for env_i, env in enumerate(("E1", "E2")):
            for seed in range(4):
                level = {"TD3": 100.0, "NE": 150.0}.get(label, 120.0 - 40 * tags.get("sparsity", 0))
                for step in (100, 200, 300):
                    ret = level * (env_i + 1) * step / 300 + seed + rng.normal(0, 1)
                    for metric, value in (("eval_return", ret), ("fau.critic", 0.3 + 0.1 * seed)):
                        rows.append(
                            {
                                "experiment": "exp",
                                "label": label,
                                "variant": variant,
                                "env": env,
                                "seed": seed,
                                "run_id": f"{abs(hash((variant, env, seed))) % 16**12:012x}",
                                "tag_family": tags.get("family"),
                                "tag_distribution": tags.get("distribution"),
                                "tag_sparsity": tags.get("sparsity"),
                                "step": step,
                                "metric": metric,
                                "value": value,
                            }
                        )
    curves = pd.DataFrame(rows)
    final = aggregate.final_values(curves, 0.34)  # last of 3 points
    aggregate.write_table(curves, root / "exp" / "curves")
    aggregate.write_table(final, root / "exp" / "final")


SPECS = {
    "curves": {"kind": "curves", "metrics": ["eval_return", "fau.critic"], "labels": ["TD3", "NE"]},
    "final_bars": {"kind": "final_bars", "labels": ["TD3", "NE"]},
    "score_vs_param": {
        "kind": "score_vs_param",
        "labels": ["TD3", "Static", "SET"][1:],
        "x": "sparsity",
        "hue": "family",
        "style": "distribution",
        "reference": {"label": "TD3"},
    },
    "aggregate_intervals": {"kind": "aggregate_intervals", "labels": ["TD3", "NE"]},
    "performance_profile": {"kind": "performance_profile", "labels": ["TD3", "NE"]},
    "probability_of_improvement": {"kind": "probability_of_improvement", "labels": ["TD3", "NE"], "target": "NE"},
    "final_table": {"kind": "final_table", "labels": ["TD3", "NE"]},
    "aggregate_table": {"kind": "aggregate_table", "labels": ["TD3", "NE"]},
}


def _spec(kind: str) -> dict:
    return {"name": f"fig_{kind}", "experiment": "exp", "stats": STATS, "palette": {"NE": "#d62728"}, **SPECS[kind]}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def aggregates(tmp_path_factory):
    root = tmp_path_factory.mktemp("agg")
    _synthetic_aggregates(root)
    return root


@pytest.mark.parametrize("kind", list(SPECS))
def test_every_kind_renders_byte_identically(kind, aggregates, tmp_path):
    spec = _spec(kind)
    data = figures.compute(spec, aggregates)
    figures.write_data(data, tmp_path / "data.csv")
    reread = figures.read_data(tmp_path / "data.csv")
    first = figures.render_to_files(spec, reread, tmp_path / "a" / spec["name"])
    second = figures.render_to_files(spec, figures.read_data(tmp_path / "data.csv"), tmp_path / "b" / spec["name"])
    expected = (".csv", ".md", ".tex") if kind in figures.TABLE_KINDS else (".pdf", ".png")
    assert [p.suffix for p in first] == list(expected)
    for p, q in zip(first, second, strict=True):
        assert p.stat().st_size > 150
        assert _sha(p) == _sha(q), f"{p.name} differs between two renders"
    if kind not in figures.TABLE_KINDS:
        pdf = first[0].read_bytes()
        assert b"CreationDate" not in pdf and b"ModDate" not in pdf
    # Statistics are seeded: computing the data again gives the same table.
    pd.testing.assert_frame_equal(data, figures.compute(spec, aggregates))


def test_curves_data_is_the_mean_over_seeds(aggregates):
    data = figures.compute(_spec("curves"), aggregates)
    curves = pd.read_parquet(aggregates / "exp" / "curves.parquet")
    cell = curves[(curves["variant"] == "NE") & (curves["env"] == "E2") & (curves["metric"] == "eval_return")]
    expected = cell.groupby("step")["value"].mean()
    got = data[(data["group"] == "NE") & (data["env"] == "E2") & (data["metric"] == "eval_return")]
    assert got["point"].to_numpy() == pytest.approx(expected.to_numpy())
    assert (got["ci_low"] <= got["point"]).all() and (got["point"] <= got["ci_high"]).all()
    fau = data[(data["group"] == "TD3") & (data["metric"] == "fau.critic")]
    assert fau["point"].to_numpy() == pytest.approx(np.full(len(fau), 0.45))  # mean of 0.3..0.6


def test_score_vs_param_groups_by_hue_style_and_x(aggregates):
    data = figures.compute(_spec("score_vs_param"), aggregates)
    assert len(data) == 2 * 2 * 2  # families × distributions × sparsities
    assert set(data["hue"]) == {"Static", "SET"} and set(data["style"]) == {"erk", "uniform"}
    assert sorted(set(data["x"])) == [0.5, 0.9]
    # Normalised by TD3: level (120 − 40 s) vs TD3's 100 → sparser is worse.
    s5 = data[(data["x"] == 0.5) & (data["hue"] == "SET")]["point"]
    s9 = data[(data["x"] == 0.9) & (data["hue"] == "SET")]["point"]
    assert (s5.to_numpy() > s9.to_numpy()).all()
    assert s5.iloc[0] == pytest.approx(1.0, abs=0.08)


def test_final_table_bold_best_and_latex_escaping(aggregates):
    spec = {**_spec("final_table"), "labels": ["TD3", "NE"]}
    data = figures.compute(spec, aggregates)
    md = tables.to_markdown(spec, data)
    assert md.count("**") == 2 * 2 + 2  # title + best cell per env
    ne_e1 = data[(data["group"] == "NE") & (data["env"] == "E1")]["point"].item()
    assert f"**{ne_e1:.1f}**" in md
    tex = tables.to_latex({**spec, "labels": ["TD3", "NE"]}, data.assign(group=data["group"] + "_x"))
    assert r"NE\_x" in tex and r"\textbf{" in tex and tex.startswith("% generated")


def test_metric_not_logged_is_a_clear_error(aggregates):
    spec = {**_spec("curves"), "metrics": ["density.critic"]}
    with pytest.raises(figures.FigureError, match=r"density\.critic.*not logged"):
        figures.compute(spec, aggregates)
