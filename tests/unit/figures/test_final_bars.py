from __future__ import annotations

import pandas as pd
import pytest

from neuroplastic import figures
from neuroplastic.figures.kinds.final_bars import AGGREGATE_LABEL
from tests.unit.figures.synthetic import STATS

EXAMPLE = {"kind": "final_bars", "experiment": "exp", "labels": ["TD3", "NE"]}


def test_final_bars_are_raw_means_per_env_plus_the_normalised_iqm(aggregates):
    spec = figures.parse_spec({**EXAMPLE, "stats": STATS})
    assert spec.normalize  # the kind's default
    data = figures.compute(spec, aggregates)
    final = pd.read_parquet(aggregates / "exp" / "final.parquet")
    final = final[final["metric"] == "eval_return"]
    ne_e1 = final[(final["variant"] == "NE") & (final["env"] == "E1")]["value"].mean()
    row = data[(data["group"] == "NE") & (data["env"] == "E1")].iloc[0]
    assert row["point"] == pytest.approx(ne_e1) and row["statistic"] == "mean"
    agg = data[data["env"] == AGGREGATE_LABEL].set_index("group")
    assert agg.loc["TD3", "statistic"] == "iqm" and agg.loc["TD3", "point"] == pytest.approx(1.0, abs=0.05)
    assert agg.loc["NE", "point"] == pytest.approx(1.5, abs=0.08)  # NE's level 150 vs TD3's 100
    raw = figures.compute(figures.parse_spec({**EXAMPLE, "stats": STATS, "normalize": False}), aggregates)
    assert AGGREGATE_LABEL not in set(raw["env"])
