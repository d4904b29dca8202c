"""What a long grid meets on a cluster, on one tiny TD3 Hopper run: a checkpoint cut short on disk, a disk that fills
up during a checkpoint or a log write, a second process on the same run, and SIGTERM (a SLURM time limit or
preemption). Each time the run ends exactly as the uninterrupted run does. (A packed batch stopped by SIGTERM:
test_train_batch.py; SIGTERM through SLURM and a second DAG on one results directory: tests/workflow.)"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from neuroplastic import cli, locks, loop, runlog, runs
from tests.conftest import FullDisk, train_cli, train_until_killed

pytestmark = pytest.mark.smoke

RUN = {
    "agent": {"name": "td3", "hidden": 32, "batch_size": 32},
    "env": "Hopper-v4",
    "seed": 0,
    "steps": 1000,
    "start_steps": 200,
    "eval_every": 500,
    "eval_episodes": 1,
    "log_every": 100,
    "checkpoint_every": 300,
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    """The uninterrupted run's metrics.parquet."""
    out = tmp_path_factory.mktemp("reference") / "runs" / "whole"
    loop.train(runs.resolve(RUN), out, progress=False, tensorboard=False)
    return (out / "metrics.parquet").read_bytes()


def _train_until(out: Path, stop_at: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train RUN into `out` and die (as kill -9 would, no clean-up) just before env step `stop_at`."""
    train_until_killed(runs.resolve(RUN), out, stop_at, monkeypatch, tensorboard=False)


def test_a_checkpoint_cut_short_resumes_from_the_one_before(tmp_path, monkeypatch, capsys, reference):
    # The case from the issue: killed after two checkpoints, the newest then cut to half its size on disk.
    out = tmp_path / "runs" / "r"
    _train_until(out, 700, monkeypatch)
    newest = tmp_path / "ckpt" / "r" / "step_000000000600.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    capsys.readouterr()
    loop.train(runs.resolve(RUN), out, progress=False, tensorboard=False)
    err = capsys.readouterr().err
    assert f"warning: corrupt checkpoint {newest}" in err and "trying the checkpoint of step 300" in err
    assert "resumed from checkpoint at step 300" in err
    assert (out / "metrics.parquet").read_bytes() == reference


@pytest.mark.parametrize(("fills_at", "free", "names"), [("checkpoint", 20_000, "checkpoint"), ("log", 10, "metrics")])
def test_a_full_disk_stops_the_run_and_a_rerun_with_space_resumes(
    fills_at, free, names, tmp_path, monkeypatch, reference
):
    """The disk fills up after the first checkpoint: with `free` bytes left the next checkpoint (20 kB, where log
    lines still fit) or the next log line (10 bytes) cannot be written. The run stops with an error naming the
    file; the first checkpoint and the whole lines of the log stay; the rerun with space resumes from them."""
    disk = FullDisk()
    monkeypatch.setattr(runlog, "open", disk.open, raising=False)
    save = loop.Checkpointer.save

    def save_then_fill(self, step, state):
        path = save(self, step, state)
        disk.free = free
        return path

    monkeypatch.setattr(loop.Checkpointer, "save", save_then_fill)
    out = tmp_path / "runs" / "r"
    with pytest.raises(runlog.DiskWriteError, match=rf"could not write .*{names}.*: No space left on device; free"):
        loop.train(runs.resolve(RUN), out, progress=False, tensorboard=False)
    ckpt = tmp_path / "ckpt" / "r"
    assert sorted(p.name for p in ckpt.iterdir()) == ["step_000000000300.complete", "step_000000000300.pt"]
    events = runlog.read_log_events(out / "metrics.jsonl")  # raises on a line cut short
    assert events[-1][0] >= 300 and not (out / "done").exists()

    monkeypatch.undo()
    loop.train(runs.resolve(RUN), out, progress=False, tensorboard=False)
    assert (out / "metrics.parquet").read_bytes() == reference


def test_a_run_in_training_refuses_a_second_process(tmp_path, capsys):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(RUN))
    out = tmp_path / "runs" / "r"
    with locks.held(out / runlog.TRAIN_LOCK, "run r", "first"):
        status = cli.main(["train", str(cfg_path), "--out", str(out), "--quiet", "--no-tensorboard"])
    assert status == 1
    err = capsys.readouterr().err
    assert f"is in use by pid {os.getpid()}" in err and "wait for it to finish or stop it" in err
    assert sorted(p.name for p in out.iterdir()) == [runlog.TRAIN_LOCK]  # nothing written


def test_sigterm_checkpoints_at_once_and_the_rerun_resumes_bit_identically(tmp_path, reference):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(RUN))
    out, ckpt = tmp_path / "runs" / "r", tmp_path / "ckpt" / "r"
    proc = train_cli(cfg_path, out)
    deadline = time.monotonic() + 300
    while not list(ckpt.glob("*.complete")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # between two scheduled checkpoints
    assert proc.poll() is None, "the run finished before it could be stopped; make it longer"
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    assert proc.returncode == cli.EXIT_STOPPED, err.decode()
    # SLURM kills 30 s (its default KillWait) after the SIGTERM of a time limit.
    assert took < 30, f"{took:.1f} s from SIGTERM to exit"
    steps = sorted(int(p.stem.split("_")[1]) for p in ckpt.glob("*.complete"))
    stopped_at = steps[-1]
    assert stopped_at % RUN["checkpoint_every"] != 0, steps  # written for the signal, not on schedule
    assert f"stopped by SIGTERM at step {stopped_at}" in err.decode()

    again = train_cli(cfg_path, out)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err.decode()
    assert f"resumed from checkpoint at step {stopped_at}" in err.decode()
    assert (out / "metrics.parquet").read_bytes() == reference
