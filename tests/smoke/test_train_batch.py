"""`neuroplastic train-batch`: several runs in one process (the workflow's `train.runs_per_job`) give exactly the
runs that `neuroplastic train` gives one process each, each with its own log; a failing run costs only itself; a
batch stopped by SIGTERM loses no run's work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from neuroplastic import cli, config, runs


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroplastic.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NEUROPLASTIC_THREADS": "1"},
        timeout=600,
    )


def _write_config(configs: Path, cfg: dict) -> str:
    rid = config.run_id(runs.resolve(cfg))
    (configs / f"{rid}.json").write_text(json.dumps(cfg))
    return rid


def test_a_batch_trains_each_run_as_a_process_of_its_own_would(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    common = {"steps": 400, "start_steps": 200, "eval_every": 200, "eval_episodes": 1, "checkpoint_every": 0}
    td3 = {"agent": {"name": "td3", "hidden": 32, "batch_size": 32}, "env": "Hopper-v4", "seed": 3, **common}
    dqn = {"agent": {"name": "dqn", "hidden": 32, "batch_size": 32}, "env": "CartPole-v1", "seed": 1, **common}
    ids = [_write_config(configs, td3), _write_config(configs, dqn)]
    bad = "0123456789ab"
    (configs / f"{bad}.json").write_text(json.dumps({**td3, "agent": {"name": "td3", "hiden": 32}}))

    # The broken run sits between the two good ones: it fails alone, and the batch reports it.
    batch = _cli(
        "train-batch",
        ids[0],
        bad,
        ids[1],
        "--configs",
        "configs",
        "--runs",
        "runs",
        "--logs",
        "logs",
        "--quiet",
        cwd=tmp_path,
    )
    assert batch.returncode == 1, batch.stderr
    assert f"1 of 3 runs failed: {bad}" in batch.stderr
    assert "hiden" in (tmp_path / "logs" / f"{bad}.log").read_text()
    assert not (tmp_path / "runs" / bad / "done").exists()

    for rid in ids:
        assert (tmp_path / "runs" / rid / "done").is_file()
        single = _cli(
            "train",
            f"configs/{rid}.json",
            "--out",
            f"single/{rid}",
            "--ckpt-dir",
            f"ckpt1/{rid}",
            "--quiet",
            cwd=tmp_path,
        )
        assert single.returncode == 0, single.stderr
        batched = pd.read_parquet(tmp_path / "runs" / rid / "metrics.parquet")
        alone = pd.read_parquet(tmp_path / "single" / rid / "metrics.parquet")
        assert len(batched) >= 2
        pd.testing.assert_frame_equal(batched, alone, check_exact=True)
        # Each run's own output went to its own log, not to the batch's.
        assert f"[{rid}]" not in (tmp_path / "logs" / f"{ids[1 - ids.index(rid)]}.log").read_text()
    assert f"[{ids[0]}] trained" in batch.stderr and f"[{ids[1]}] trained" in batch.stderr

    # Again: the finished runs are not trained twice, and the job now succeeds once the broken config is gone.
    (configs / f"{bad}.json").unlink()
    again = _cli(
        "train-batch", *ids, "--configs", "configs", "--runs", "runs", "--logs", "logs", "--quiet", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert all("already done" in (tmp_path / "logs" / f"{rid}.log").read_text() for rid in ids)


def test_sigterm_stops_a_batch_at_a_checkpoint_and_its_rerun_trains_nothing_twice(tmp_path):
    """SIGTERM during the second of three runs: the first keeps its `done`, the second writes a checkpoint, the third
    is not started, and the batch exits EXIT_STOPPED. The rerun skips the first, resumes the second and trains the
    third."""
    configs = tmp_path / "configs"
    configs.mkdir()
    quick = {"agent": {"name": "dqn", "hidden": 32, "batch_size": 32}, "env": "CartPole-v1", "steps": 300}
    quick.update({"start_steps": 100, "eval_every": 300, "eval_episodes": 1, "checkpoint_every": 0})
    long = {"agent": {"name": "td3", "hidden": 32, "batch_size": 32}, "env": "Hopper-v4", "seed": 0, "steps": 1000}
    long.update({"start_steps": 200, "eval_every": 500, "eval_episodes": 1, "log_every": 100, "checkpoint_every": 300})
    first, stopped, last = (_write_config(configs, c) for c in ({**quick, "seed": 1}, long, {**quick, "seed": 2}))
    args = ["train-batch", first, stopped, last, "--configs", "configs", "--runs", "runs", "--logs", "logs", "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuroplastic.cli", *args],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NEUROPLASTIC_THREADS": "1"},
    )
    ckpt = tmp_path / "ckpt" / stopped
    deadline = time.monotonic() + 300
    while not list(ckpt.glob("*.complete")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the batch finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == cli.EXIT_STOPPED, err
    assert f"[{stopped}] stopped at a checkpoint" in err and f"not started: {last}" in err
    runs = tmp_path / "runs"
    assert (runs / first / "done").is_file() and not (runs / stopped / "done").exists()
    assert not (runs / last).exists()
    assert "stopped by SIGTERM at step" in (tmp_path / "logs" / f"{stopped}.log").read_text()

    rerun = _cli(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "already done" in (tmp_path / "logs" / f"{first}.log").read_text()
    assert "resumed from checkpoint" in (tmp_path / "logs" / f"{stopped}.log").read_text()
    manifests = {r: json.loads((runs / r / "manifest.json").read_text()) for r in (first, stopped, last)}
    assert [manifests[r]["resumes"] for r in (first, stopped, last)] == [0, 1, 0]
