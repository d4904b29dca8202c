"""The one table writer (CSV + Markdown + LaTeX) shared by every table kind."""

from __future__ import annotations

import pandas as pd
import pytest

from neuroplastic.figures import tables


def _table() -> tables.Table:
    return tables.Table(
        head=["env", "A_1", "B"],
        rows=[["E&1", tables.Cell("1.5", "[1.0, 2.0]", bold=True), None], ["E2", "7 ± 2", "3"]],
        caption="50% of $x",
    )


def test_markdown_and_latex_of_one_table(tmp_path):
    t = _table()
    assert t.align == "lcc"
    assert tables.to_markdown(t, "T") == (
        "**T**: 50% of $x\n\n| env | A_1 | B |\n|---|---|---|\n| E&1 | **1.5** [1.0, 2.0] | – |\n| E2 | 7 ± 2 | 3 |\n"
    )
    tex = tables.to_latex(t)
    assert r"env & A\_1 & B \\" in tex
    assert r"E\&1 & \textbf{1.5} {\scriptsize [1.0, 2.0]} & -- \\" in tex
    assert r"E2 & 7 $\pm$ 2 & 3 \\" in tex and tex.endswith("% 50\\% of \\$x\n")
    data = pd.DataFrame({"a": [1.0 / 3], "b": ["x"]})
    files = tables.write(t, data, tmp_path / "t")
    assert [f.name for f in files] == ["t.csv", "t.md", "t.tex"]
    assert (tmp_path / "t.csv").read_text() == "a,b\n0.333333,x\n"


def test_rows_must_match_the_header():
    with pytest.raises(ValueError, match="row has 2 cells, the header 3"):
        tables.Table(head=["a", "b", "c"], rows=[["1", "2"]], caption="")


def test_decimals_show_about_four_significant_digits():
    import numpy as np

    assert tables.decimals(np.array([1234.5])) == 0
    assert tables.decimals(np.array([1.2345, np.nan])) == 3
    assert tables.decimals(np.array([0.0])) == 2
