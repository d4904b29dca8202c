from __future__ import annotations

from neuroplastic import figures
from neuroplastic.figures.kinds import aggregate_table
from tests.unit.figures.synthetic import STATS

EXAMPLE = {"kind": "aggregate_table", "experiment": "exp", "labels": ["TD3", "NE"]}


def test_best_per_statistic_is_bold_and_the_lowest_optimality_gap_wins(aggregates):
    spec = figures.parse_spec({**EXAMPLE, "stats": STATS, "statistics": ["iqm", "optimality_gap"]})
    data = figures.compute(spec, aggregates)
    table = aggregate_table.render(spec, data)
    assert table.head == ["method", "IQM", "Optimality gap"]
    cells = {row[0]: row[1:] for row in table.rows}
    assert cells["NE"][0].bold and not cells["TD3"][0].bold  # higher IQM
    gap = data[data["statistic"] == "optimality_gap"].set_index("group")["point"]
    assert cells[gap.idxmin()][1].bold and not cells[gap.idxmax()][1].bold
