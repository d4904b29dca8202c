"""`neuroplastic train` honours the run contract that the DAG relies on."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from neuroplastic import config, loop, runs
from neuroplastic.methods import METHODS, Method, register
from tests.conftest import REPO, tiny_config

pytestmark = pytest.mark.smoke


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroplastic.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_tiny_hopper_run_writes_the_run_files(tmp_path):
    cfg_path = REPO / "config" / "examples" / "td3-hopper-tiny.yaml"
    out = tmp_path / "runs" / "hopper"
    res = _cli("train", str(cfg_path), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in out.iterdir())
    events = [n for n in names if n.startswith("events.out.tfevents.")]
    assert len(events) == 1  # TensorBoard's mirror of metrics.jsonl (on by default)
    assert [n for n in names if n not in events] == [
        "attempt.json",
        "config.json",
        "done",
        "manifest.json",
        "metrics.jsonl",
        "metrics.parquet",
        "train.lock",
    ]
    df = pd.read_parquet(out / "metrics.parquet")
    assert list(df.columns) == ["step", "metric", "value"]
    ev = df[df.metric == "eval_return"]
    assert ev.step.tolist() == [500, 1000, 1500]
    assert all(math.isfinite(v) for v in ev.value)
    assert {"critic_loss", "actor_loss"} <= set(df.metric)
    man = json.loads((out / "manifest.json").read_text())
    assert man["env_id"] == "Hopper-v4" and man["updates"] == 1000 and man["env_steps"] == 1500
    assert {"python", "torch", "gymnasium", "mujoco", "dm_control", "cuda"} <= set(man["versions"])
    assert man["updates_per_s"] > 0 and man["wall_seconds"] > 0
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["agent"]["batch_size"] == 256 and resolved["method"] == []
    assert json.loads((out / "done").read_text())["run_id"] == config.run_id(runs.load(cfg_path))
    # no checkpoints are left behind once the run is done
    assert not any((tmp_path / "ckpt" / "hopper").glob("step_*"))
    # re-running a finished run is a no-op
    again = _cli("train", str(cfg_path), "--out", str(out), "--quiet")
    assert again.returncode == 0 and "already done" in again.stderr


def test_bad_config_fails_before_training_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**tiny_config(), "agent": {"name": "td3", "batchsize": 3}}))
    res = _cli("train", str(bad), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert "agent.batchsize: unknown key" in res.stderr
    assert not (tmp_path / "out").exists()


def test_out_dir_of_another_run_is_refused(tmp_path):
    out = tmp_path / "run"
    loop.train(runs.resolve(tiny_config(steps=300, eval_every=300)), out, progress=False)
    with pytest.raises(loop.RunDirError, match="different run"):
        loop.train(runs.resolve(tiny_config(steps=300, eval_every=300, seed=5)), out, progress=False)


class PoisonCritic(Method):
    """Writes NaN into the critic at a given step to exercise the non-finite guard."""

    name = "_poison"

    def on_step(self, agent, step):
        if step == 450:
            with __import__("torch").no_grad():
                next(agent.nets["critic"].parameters()).fill_(float("nan"))


def test_non_finite_loss_fails_the_run_without_done(tmp_path):
    register(PoisonCritic)
    try:
        cfg = runs.resolve(tiny_config(method="_poison"))
        with pytest.raises(loop.NonFiniteLossError, match="non-finite loss"):
            loop.train(cfg, tmp_path / "run", progress=False)
    finally:
        METHODS.pop("_poison")
    assert not (tmp_path / "run" / "done").exists()
    assert not (tmp_path / "run" / "metrics.parquet").exists()
