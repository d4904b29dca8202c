"""A finished run whose `done` marker was deleted (Snakemake deletes the outputs of every job of a failed job
group) gets it back from its manifest without training again."""

from __future__ import annotations

import pytest

from neuroplastic import loop, runs
from tests.conftest import tiny_config

pytestmark = pytest.mark.smoke


def test_deleted_done_is_restored_without_training(tmp_path, monkeypatch):
    cfg = runs.resolve(tiny_config(steps=400, start_steps=200, eval_every=200, log_every=200))
    out = tmp_path / "run"
    done = loop.train(cfg, out, progress=False)
    marker = done.read_bytes()
    parquet = (out / "metrics.parquet").read_bytes()
    done.unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr(loop, "build", no_training)
    assert loop.train(cfg, out, progress=False) == done
    assert done.read_bytes() == marker
    assert (out / "metrics.parquet").read_bytes() == parquet

    # Without the manifest (a run killed before it finished) the run is trained, not restored.
    done.unlink()
    (out / "manifest.json").unlink()
    with pytest.raises(AssertionError, match="trained again"):
        loop.train(cfg, out, progress=False)
