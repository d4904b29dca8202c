"""reference_curves: our curves next to the published references at the same x (TD3 endpoints, DrQ-v2's
official curves), with the protocol notes carried into the figure data."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from neuroplastic import figures, reference
from neuroplastic.analysis import aggregate
from neuroplastic.figures.base import AggregateTables
from tests.unit.figures.synthetic import KEYS, STATS

TD3_REFS = ["td3_curves_final", "cleanrl_td3"]
EXAMPLE = {
    "kind": "reference_curves",
    "experiment": "val",
    "references": [*TD3_REFS, "drqv2_dmc"],
    "ours_protocol": "TD3 256-256, lr 3e-4, batch 256",
}


def example_curves() -> pd.DataFrame:
    """`val`: TD3 on HalfCheetah-v4 for 1M steps (3 seeds, evals every 250k) and DrQ-v2 on pixel cheetah-run for
    1M agent steps (= 2M frames); returns = seed offset + a fixed curve, so means are known exactly."""
    rows = []
    for env, label, level in (("HalfCheetah-v4", "TD3", 9000.0), ("dmc-pixels:cheetah-run", "DrQ-v2", 800.0)):
        for seed in range(3):
            for step in (250_000, 500_000, 750_000, 1_000_000):
                value = level * step / 1_000_000 + 10.0 * (seed - 1)
                rows.append(["val", label, label, env, seed, f"{env[:3]}{seed}", step, "eval_return", value])
    return pd.DataFrame(rows, columns=[*KEYS, "step", "metric", "value"])


def example_tables(curves: pd.DataFrame | None = None) -> AggregateTables:
    curves = example_curves() if curves is None else curves
    return AggregateTables(frames={"val": (curves, aggregate.final_values(curves, 0.1))})


def write_example_tables(root: Path) -> Path:
    curves = example_curves()
    aggregate.write_table(curves, root / "val" / "curves")
    aggregate.write_table(aggregate.final_values(curves, 0.1), root / "val" / "final")
    return root


def spec_of(kind: str, **over):
    return figures.parse_spec({"kind": kind, "experiment": "val", "references": TD3_REFS, "stats": STATS, **over})


def test_reference_curves_data_holds_ours_and_the_references_at_their_steps():
    data = figures.compute(spec_of("reference_curves", references=[*TD3_REFS, "drqv2_dmc"]), example_tables())
    ours = data[(data["kind"] == "ours") & (data["env"] == "HalfCheetah-v4")]
    assert ours["point"].tolist() == pytest.approx([2250.0, 4500.0, 6750.0, 9000.0])
    td3 = data[(data["source"] == "td3_curves_final") & (data["env"] == "HalfCheetah-v4")].iloc[0]
    assert (td3["kind"], td3["step"], td3["point"]) == ("endpoint", 1_000_000, 9566.6)
    assert (td3["ci_low"], td3["ci_high"]) == pytest.approx((9566.6 - 832.9, 9566.6 + 832.9))
    assert "reference on v1 envs, ours on v4" in td3["note"]
    drq = data[(data["source"] == "drqv2_dmc") & (data["env"] == "dmc-pixels:cheetah-run")].set_index("step")
    # 2M frames = 1M agent steps at action repeat 2; the curve continues beyond our runs (to 2.98M frames).
    assert (
        drq.loc[1_000_000, "point"]
        == reference.points("drqv2_dmc", "dmc-pixels:cheetah-run").set_index("step").loc[1_000_000, "mean"]
    )
    assert drq.index.max() == 1_490_000
    assert data[(data["env"] == "HalfCheetah-v4") & (data["source"] == "drqv2_dmc")].empty


def test_unknown_reference_is_a_spec_problem():
    plan = SimpleNamespace(config={"experiments": {"val": {"envs": ["HalfCheetah-v4"]}}})
    spec = spec_of("reference_curves", references=["td4", "drqv2_dmc"])
    problems = figures.KINDS["reference_curves"].check(spec, plan)
    assert any("unknown reference 'td4'" in p for p in problems)
    assert any("'drqv2_dmc' has no numbers for any of the envs HalfCheetah-v4" in p for p in problems)


def hopper_tables(levels: dict[int, list[float]]) -> AggregateTables:
    """`val`: TD3 on Hopper-v4, one value per (step, seed) as given."""
    rows = [
        ["val", "TD3", "TD3", "Hopper-v4", seed, f"h{seed}", step, "eval_return", value]
        for step, values in levels.items()
        for seed, value in enumerate(values)
    ]
    return example_tables(pd.DataFrame(rows, columns=[*KEYS, "step", "metric", "value"]))


def test_author_band_is_median_iqr_and_range_at_every_checkpoint_inside_our_runs(tmp_path):
    tables = hopper_tables({s: [300.0, 400.0, 500.0] for s in range(5_000, 60_001, 5_000)})
    spec = spec_of("reference_curves", references=["td3_author_curves"], name="band")
    data = figures.compute(spec, tables)
    band = data[data["kind"] == "seeds"].set_index("step")
    ref = reference.band("td3_author_curves", "Hopper-v4").set_index("step")
    assert len(band) == len(ref) == 201  # every 5k checkpoint is in the data; the drawing stops at our last step
    for step in (50_000, 300_000):
        got = band.loc[step, ["point", "ci_low", "ci_high", "range_low", "range_high"]].tolist()
        assert got == pytest.approx(ref.loc[step, ["median", "q25", "q75", "min", "max"]].tolist())
    assert "reference on v1 envs, ours on v4" in band["note"].iloc[0]
    figures.write_data(data, tmp_path / "band.csv")
    paths = figures.render_to_files(spec, figures.read_data(tmp_path / "band.csv"), tmp_path / "band")
    assert all(p.stat().st_size > 0 for p in paths)
