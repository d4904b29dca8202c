from __future__ import annotations

import os

import pytest
import torch

from neuroplastic import locks, runlog
from neuroplastic.checkpoint import Checkpointer
from tests.conftest import FullDisk


def test_keeps_last_two_and_ignores_incomplete(tmp_path):
    ck = Checkpointer(tmp_path, keep=2)
    for s in (10, 20, 30):
        ck.save(s, {"step": s})
    assert ck.complete_steps() == [20, 30]
    # A checkpoint file without its sentinel (death between rename and sentinel) is not trusted.
    (tmp_path / "step_000000000040.pt").write_bytes(b"garbage")
    step, state = ck.latest()
    assert step == 30 and state == {"step": 30}
    ck.save(50, {"step": 50})
    assert ck.complete_steps() == [30, 50]
    assert not (tmp_path / "step_000000000040.pt").exists()
    ck.clear()
    assert ck.latest() is None


def _three_checkpoints(directory) -> Checkpointer:
    ck = Checkpointer(directory, keep=2)
    for s in (10, 20):
        ck.save(s, {"step": s, "weights": torch.arange(1000.0) * s})
    return ck


def test_a_checkpoint_cut_short_is_set_aside_and_the_older_one_resumed(tmp_path, capsys):
    ck = _three_checkpoints(tmp_path)
    newest = tmp_path / "step_000000000020.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # the file cut to half its size
    step, state = ck.latest()
    assert step == 10 and torch.equal(state["weights"], torch.arange(1000.0) * 10)
    err = capsys.readouterr().err
    assert f"corrupt checkpoint {newest}" in err and "cut short" in err and "step 10" in err
    # Kept for inspection under a name nothing resumes from; the next save and `clear` go on as before.
    assert (tmp_path / "step_000000000020.pt.corrupt").is_file() and not newest.exists()
    assert ck.complete_steps() == [10]
    ck.save(30, {"step": 30})
    assert ck.complete_steps() == [10, 30]
    ck.clear()
    assert not list(tmp_path.iterdir())


def test_a_damaged_byte_is_caught_by_the_seal(tmp_path, capsys):
    ck = _three_checkpoints(tmp_path)
    newest = tmp_path / "step_000000000020.pt"
    data = bytearray(newest.read_bytes())
    # A flipped byte inside the tensor data: torch would load it and resume from silently wrong weights.
    at = data.find(torch.tensor([500.0 * 20]).numpy().tobytes())
    assert at > 0
    data[at] ^= 0xFF
    newest.write_bytes(bytes(data))
    step, _ = ck.latest()
    assert step == 10
    assert "CRC-32 differs" in capsys.readouterr().err


def test_with_every_checkpoint_corrupt_the_run_starts_clean(tmp_path, capsys):
    ck = _three_checkpoints(tmp_path)
    for p in tmp_path.glob("*.pt"):
        p.write_bytes(b"PK\x03\x04 not a checkpoint")
    assert ck.latest() is None
    err = capsys.readouterr().err
    assert err.count("corrupt checkpoint") == 2 and "starting the run from scratch" in err


def test_an_unsealed_checkpoint_of_an_older_version_that_cannot_load_falls_back(tmp_path, capsys):
    # Sentinels were empty before they held a seal: such a checkpoint is judged by loading it.
    ck = _three_checkpoints(tmp_path)
    for s in (10, 20):
        (tmp_path / f"step_{s:012d}.complete").write_text("")
    newest = tmp_path / "step_000000000020.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    assert ck.latest()[0] == 10
    assert "cannot be loaded" in capsys.readouterr().err


def test_a_full_disk_during_a_save_leaves_the_older_checkpoints(tmp_path, monkeypatch):
    ck = _three_checkpoints(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    disk = FullDisk(free=3000)
    monkeypatch.setattr(runlog, "open", disk.open, raising=False)
    with pytest.raises(runlog.DiskWriteError, match=r"could not write checkpoint .*step_000000000030\.pt: No space"):
        ck.save(30, {"step": 30, "weights": torch.arange(1000.0)})
    # The temporary file is gone (its space given back); the complete checkpoints are as they were.
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    assert ck.latest()[0] == 20


def test_a_full_disk_during_a_log_write_keeps_whole_lines(tmp_path, monkeypatch):
    disk = FullDisk()
    monkeypatch.setattr(runlog, "open", disk.open, raising=False)
    log = runlog.MetricsLog(tmp_path / "metrics.jsonl", tensorboard=False)
    log.open()
    log.write(1, {"a": 1.0})
    disk.free = 10  # the next line fits only in part
    with pytest.raises(runlog.DiskWriteError, match=r"could not write the metrics log .*metrics\.jsonl: No space"):
        log.write(2, {"a": 2.0})
    assert log.offset() == len(b'{"step":1,"metrics":{"a":1.0}}\n')
    log.close()
    assert runlog.read_log_events(tmp_path / "metrics.jsonl") == [(1, {"a": 1.0})]


def test_a_second_holder_of_a_lock_is_refused_naming_the_first(tmp_path):
    path = tmp_path / "train.lock"
    refused = pytest.raises(locks.LockHeldError, match=rf"run x is in use by pid {os.getpid()} on host .*wait for it")
    with locks.held(path, "run x", "wait for it"), refused:
        locks.acquire(path, "run x", "wait for it")
    # Released with its holder: the next one gets it.
    with locks.held(path, "run x", "wait for it"):
        pass
