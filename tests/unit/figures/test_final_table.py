from __future__ import annotations

from neuroplastic import figures
from neuroplastic.figures import tables
from neuroplastic.figures.kinds import final_table
from tests.unit.figures.synthetic import STATS

EXAMPLE = {"kind": "final_table", "experiment": "exp", "labels": ["TD3", "NE"]}


def test_final_table_bold_best_and_latex_escaping(aggregates):
    spec = figures.parse_spec({**EXAMPLE, "stats": STATS, "name": "fig_final_table"})
    assert not spec.normalize  # the kind's default
    data = figures.compute(spec, aggregates)
    md = tables.to_markdown(final_table.render(spec, data), spec.name)
    assert md.count("**") == 2 * 2 + 2  # title + best cell per env
    ne_e1 = data[(data["group"] == "NE") & (data["env"] == "E1")]["point"].item()
    assert f"**{ne_e1:.1f}**" in md
    assert md.splitlines()[2] == "| env | TD3 | NE |"
    tex = tables.to_latex(final_table.render(spec, data.assign(group=data["group"] + "_x")))
    assert r"NE\_x" in tex and r"\textbf{" in tex and tex.startswith("% generated")
