"""Same config twice → identical metrics.parquet; kill -9 + re-run → identical to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from neuroplastic import config, loop
from tests.conftest import tiny_config

pytestmark = pytest.mark.smoke

RESUME_CFG = tiny_config(steps=1600, start_steps=300, eval_every=400, log_every=200, checkpoint_every=400)


def _train_cli(cfg_path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "neuroplastic.cli", "train", str(cfg_path), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NEUROPLASTIC_THREADS": "1"},
    )


def test_same_config_twice_is_bit_identical(tmp_path):
    cfg = config.resolve(tiny_config(steps=800, log_every=200, eval_every=400))
    for name in ("a", "b"):
        loop.train(cfg, tmp_path / name, progress=False)
    a = (tmp_path / "a" / "metrics.parquet").read_bytes()
    assert a == (tmp_path / "b" / "metrics.parquet").read_bytes()
    other = config.resolve(tiny_config(steps=800, log_every=200, eval_every=400, seed=1))
    loop.train(other, tmp_path / "c", progress=False)
    assert a != (tmp_path / "c" / "metrics.parquet").read_bytes()


def run_killed_and_resumed(tmp_path: Path, cfg_dict: dict, kill_after_checkpoints: int = 1) -> bytes:
    """Run through the CLI, SIGKILL it after `kill_after_checkpoints` complete checkpoints, run it again."""
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg_dict))
    out = tmp_path / "runs" / "killed"
    ckpt = tmp_path / "ckpt" / "killed"
    proc = _train_cli(cfg_path, out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(list(ckpt.glob("*.complete"))) >= kill_after_checkpoints or proc.poll() is not None:
            break
        time.sleep(0.05)
    # Let it run past the checkpoint so there is work after it to lose and redo.
    time.sleep(0.7)
    assert proc.poll() is None, "run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "done").exists()
    lines_at_kill = (out / "metrics.jsonl").read_bytes().count(b"\n")
    assert lines_at_kill > 0
    resumed = _train_cli(cfg_path, out)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err.decode()
    assert b"resumed from checkpoint" in err
    return (out / "metrics.parquet").read_bytes()


def assert_kill_9_resume_bit_identical(tmp_path: Path, cfg_dict: dict) -> None:
    """A run killed with SIGKILL after its first checkpoint and re-run ends with the same metrics.parquet, byte
    for byte, as an uninterrupted run of the same config."""
    resumed = run_killed_and_resumed(tmp_path, cfg_dict)
    ref = tmp_path / "runs" / "reference"
    proc = _train_cli(tmp_path / "cfg.yaml", ref)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert resumed == (ref / "metrics.parquet").read_bytes()


def test_kill_9_then_rerun_is_bit_identical(tmp_path):
    assert_kill_9_resume_bit_identical(tmp_path, RESUME_CFG)
