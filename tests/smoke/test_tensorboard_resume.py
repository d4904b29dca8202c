"""A real `kill -9` and rerun: the run's TensorBoard event files hold each logged step once, as metrics.parquet."""

from __future__ import annotations

import pytest

from neuroplastic import events
from tests.conftest import run_killed_and_resumed, tiny_config
from tests.unit.test_watching import _parquet_pairs

pytestmark = pytest.mark.smoke


def test_kill_9_and_rerun_leaves_no_duplicated_step_in_the_event_files(tmp_path):
    cfg = tiny_config(steps=1000, start_steps=300, eval_every=500, log_every=100, checkpoint_every=400)
    run_killed_and_resumed(tmp_path, cfg)
    out = tmp_path / "runs" / "killed"
    assert len(events.event_files(out)) == 1
    scalars = events.read_scalars(out)
    assert scalars == _parquet_pairs(out)
    for pairs in scalars.values():
        steps = [s for s, _ in pairs]
        assert steps == sorted(set(steps))
    assert [s for s, _ in scalars["eval_return"]] == [500, 1000]
