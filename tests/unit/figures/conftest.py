from __future__ import annotations

import pytest

from tests.unit.figures.synthetic import write_aggregates


@pytest.fixture(scope="session")
def aggregates(tmp_path_factory):
    """Root of the synthetic aggregated tables (experiments exp, cyc, drq_arr; see synthetic.py)."""
    return write_aggregates(tmp_path_factory.mktemp("aggregates"))
