"""The SLURM profile against a real SLURM: a single-node munge + slurmctld + slurmd cluster on this machine
(tests/workflow/slurm_cluster.sh installs it with apt when missing) runs a subset of the smoke DAG through
snakemake-executor-plugin-slurm with workflow/profiles/slurm. Skipped, loudly, only where SLURM can neither be
found nor installed (no root or no apt)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from tests.conftest import system_install_lock
from tests.workflow.helpers import REPO, env, snakemake, snakemake_popen, tiny_config, write_yaml

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def slurm_cluster():
    script = REPO / "tests" / "workflow" / "slurm_cluster.sh"
    with system_install_lock():
        proc = subprocess.run([str(script), "start"], capture_output=True, text=True, timeout=600)
    if proc.returncode == 77:
        msg = f"SLURM TEST SKIPPED: no SLURM here and it cannot be installed:\n{proc.stderr}"
        print(msg, file=sys.stderr)
        warnings.warn(msg, stacklevel=1)
        pytest.skip(msg)
    assert proc.returncode == 0, f"starting the SLURM test cluster failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _slurm_args(configfile: Path) -> list[str]:
    return [
        "--profile",
        str(REPO / "workflow" / "profiles" / "slurm"),
        "--configfile",
        str(configfile),
        # This test cluster has no accounting database (see the profile's header).
        "--slurm-status-command",
        "squeue",
        "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--slurm-keep-successful-logs",
        "--jobs",
        "4",
    ]


def test_smoke_subset_runs_through_slurm(slurm_cluster, tmp_path):
    cfg = tiny_config(name="slurm", envs=1, variants=1, seeds=2, figure_kinds=("curves", "final_table"))
    cfg["train"]["runs_per_job"] = 1  # one sbatch job per run, the paper's setting
    write_yaml(cfg, tmp_path / "config.yaml")
    proc = snakemake(
        tmp_path,
        *_slurm_args(tmp_path / "config.yaml"),
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    run_dirs = sorted((tmp_path / "results" / "runs").iterdir())
    assert len(run_dirs) == 2 and all((d / "done").is_file() for d in run_dirs)
    # The training jobs went through sbatch: one submission per cluster job, and the plugin's per-job logs of
    # rule `train` exist (everything else is a local rule or aggregate/figure_data).
    log = proc.stdout + proc.stderr
    assert log.count("has been submitted with SLURM jobid") >= 2, log[-4000:]
    slurm_logs = list((tmp_path / "results" / "logs" / "slurm").rglob("*.log"))
    assert sum("train" in str(p) for p in slurm_logs) == 2, slurm_logs
    figures = tmp_path / "paper_figures" / "slurm"
    assert (figures / "MANIFEST.json").is_file()
    assert (figures / "main_final_table.md").read_text().count("|") > 4


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"snakemake ended before {what}:\n{out[-3000:]}\n{err[-5000:]}")
        time.sleep(0.2)
    proc.kill()
    queue = subprocess.run(["squeue", "-o", "%i %j %T %r %C %m"], capture_output=True, text=True).stdout
    node = subprocess.run(["scontrol", "show", "node"], capture_output=True, text=True).stdout
    raise AssertionError(f"timed out waiting for {what}; the queue (id name state reason cpus mem):\n{queue}\n{node}")


def _uninterrupted(tmp_path: Path, run: str) -> bytes:
    """metrics.parquet of the workflow's run `run` trained again by `neuroplastic train`, in one go."""
    reference = tmp_path / "reference" / run
    config_path = tmp_path / "results" / "configs" / f"{run}.json"
    done = subprocess.run(
        [sys.executable, "-m", "neuroplastic.cli", "train", str(config_path), "--out", str(reference), "--quiet"],
        capture_output=True,
        text=True,
        env={**env(), "NEUROPLASTIC_THREADS": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return (reference / "metrics.parquet").read_bytes()


def test_packed_group_survives_a_killed_run(slurm_cluster, tmp_path):
    """Two runs packed into one sbatch job (`train.runs_per_gpu: 2`); one is killed with SIGKILL mid-way. The
    retry resumes only that run, from its checkpoint, bit-identically; the other run is not trained again."""
    cfg = tiny_config(name="pack", envs=1, variants=1, seeds=2, figure_kinds=("final_table",))
    cfg["run"].update({"steps": 1600, "start_steps": 300, "eval_every": 400, "log_every": 200, "checkpoint_every": 400})
    cfg["train"].update({"runs_per_gpu": 2, "runs_per_job": 1, "threads": 1, "gpu": 0, "device": "cpu"})
    write_yaml(cfg, tmp_path / "config.yaml")
    proc = snakemake_popen(
        tmp_path,
        *_slurm_args(tmp_path / "config.yaml"),
    )
    runs = tmp_path / "results" / "runs"
    ckpts = tmp_path / "results" / "ckpt"
    _wait_for(lambda: any(ckpts.glob("*/*.complete")), 900, "a first checkpoint", proc)
    victim = sorted(ckpts.glob("*/*.complete"))[0].parent.name
    pids = subprocess.run(
        ["pgrep", "-f", f"neuroplastic.cli train results/configs/{victim}.json"], capture_output=True, text=True
    ).stdout.split()
    assert pids, f"no training process found for run {victim}"
    time.sleep(0.5)  # past the checkpoint, so that work is lost and redone
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    out, err = proc.communicate(timeout=1200)
    (tmp_path / "snakemake.log").write_text(out + err)
    assert proc.returncode == 0, out[-4000:] + err[-6000:]

    run_ids = sorted(p.name for p in runs.iterdir())
    assert len(run_ids) == 2 and victim in run_ids
    other = next(r for r in run_ids if r != victim)
    manifests = {r: json.loads((runs / r / "manifest.json").read_text()) for r in run_ids}
    assert manifests[victim]["resumes"] == 1
    assert manifests[other]["resumes"] == 0

    # One sbatch job trained both runs (the group); the retry's job trained only the killed one.
    train_jobs = sorted(
        (tmp_path / "results" / "logs" / "slurm").glob("group_train-*/*.log"), key=lambda p: int(p.stem)
    )
    assert len(train_jobs) == 2, train_jobs
    first, retry = (p.read_text() for p in train_jobs)
    assert all(f"train:run_id={r}" in first for r in run_ids), first[-3000:]
    # Snakemake re-submits the whole failed group (and deletes its `done` files first); the finished run only
    # gets its `done` back from its manifest, while the killed one resumes from its checkpoint.
    assert all(f"train:run_id={r}" in retry for r in run_ids), retry[-3000:]
    other_log = (tmp_path / "results" / "logs" / "train" / f"{other}.log").read_text()
    assert "restored" in other_log and "without training" in other_log, other_log
    victim_log = (tmp_path / "results" / "logs" / "train" / f"{victim}.log").read_text()
    assert "resumed from checkpoint" in victim_log, victim_log

    # The resumed run is bit-identical to an uninterrupted run of the same config.
    assert (runs / victim / "metrics.parquet").read_bytes() == _uninterrupted(tmp_path, victim)


def test_sigterm_to_a_batch_job_checkpoints_and_the_retry_trains_nothing_twice(slurm_cluster, tmp_path):
    """Two runs in one job (`train.runs_per_job: 2`). While the second trains, the job's steps get SIGTERM, as the
    profile's `--signal=TERM@120` sends it before a time limit (a preemption or the limit itself sends it to every
    process): the trainer writes a checkpoint at the step it is on and exits 75, Snakemake retries the job (and
    deletes its `done` files first), the finished run gets its `done` back without training, and the stopped one
    resumes from the stop's checkpoint, bit-identically."""
    cfg = tiny_config(name="term", envs=1, variants=1, seeds=2, figure_kinds=("final_table",))
    cfg["run"].update({"steps": 1600, "start_steps": 300, "eval_every": 400, "log_every": 200, "checkpoint_every": 400})
    cfg["train"].update({"runs_per_job": 2, "threads": 1, "gpu": 0, "device": "cpu"})
    write_yaml(cfg, tmp_path / "config.yaml")
    proc = snakemake_popen(tmp_path, *_slurm_args(tmp_path / "config.yaml"))
    runs, ckpts = tmp_path / "results" / "runs", tmp_path / "results" / "ckpt"
    _wait_for(lambda: any(runs.glob("*/done")), 900, "the batch's first run", proc)
    finished = next(runs.glob("*/done")).parent.name
    _wait_for(lambda: any(p.parent.name != finished for p in ckpts.glob("*/*.complete")), 900, "a checkpoint", proc)
    stopped = next(p.parent.name for p in ckpts.glob("*/*.complete") if p.parent.name != finished)
    finished_manifest = (runs / finished / "manifest.json").read_bytes()
    # The plugin puts the rule's name in the job's comment.
    jobs = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True).stdout.splitlines()
    job_ids = [line.split()[0] for line in jobs if "train_batch" in line]
    assert len(job_ids) == 1, jobs
    time.sleep(0.3)  # past the scheduled checkpoint
    subprocess.run(["scancel", "--signal=TERM", job_ids[0]], check=True)
    out, err = proc.communicate(timeout=1200)
    (tmp_path / "snakemake.log").write_text(out + err)
    assert proc.returncode == 0, out[-4000:] + err[-6000:]

    # The first attempt's job ended on the trainer's exit status 75, the retry resumed from the stop's checkpoint.
    slurm_logs = sorted((tmp_path / "results" / "logs" / "slurm").rglob("*.log"), key=lambda p: int(p.stem))
    train_logs = [p.read_text() for p in slurm_logs if "train_batch" in str(p)]
    assert len(train_logs) == 2 and "exit status 75" in train_logs[0], train_logs[0][-3000:]
    log = (tmp_path / "results" / "logs" / "train" / f"{stopped}.log").read_text()
    step = int(re.search(r"resumed from checkpoint at step (\d+)", log).group(1))
    assert step % 400 != 0, log  # written for the signal, not one of the scheduled checkpoints
    assert json.loads((runs / stopped / "manifest.json").read_text())["resumes"] == 1
    assert (runs / stopped / "metrics.parquet").read_bytes() == _uninterrupted(tmp_path, stopped)
    # The finished run was not trained again: its manifest is the one its only training wrote.
    assert (runs / finished / "done").is_file()
    assert (runs / finished / "manifest.json").read_bytes() == finished_manifest
