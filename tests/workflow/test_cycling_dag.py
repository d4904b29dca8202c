"""The smoke config's cycling experiment through the whole DAG (train → aggregate → figure data → render),
cut to two variants and tiny phases: the cycling figure is rendered, in the MANIFEST, with every task and the
phase switches in its data."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from tests.workflow.helpers import REPO, load_config, snakemake, write_yaml

pytestmark = pytest.mark.workflow

TASKS = ["HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4"]


def tiny_cycling_config() -> dict:
    cfg = load_config(REPO / "config" / "smoke.yaml")
    exp = cfg["experiments"]["cycling"]
    exp["variants"] = [v for v in exp["variants"] if v["label"] in ("TD3", "NE")]
    exp["run"].update({"steps": 400, "start_steps": 100, "eval_every": 100, "log_every": 100})
    exp["run"]["cycle"].update({"phase_steps": 100, "eval_max_episode_steps": 20})
    cfg["name"] = "tinycyc"
    cfg["experiments"] = {"cycling": exp}
    cfg["figures"] = {"cycling": cfg["figures"]["cycling"]}
    return cfg


def test_smoke_cycling_experiment_renders_its_figure(tmp_path):
    write_yaml(tiny_cycling_config(), tmp_path / "config.yaml")
    profile = str(REPO / "workflow" / "profiles" / "local")
    proc = snakemake(tmp_path, "--profile", profile, "--cores", "2", "--configfile", str(tmp_path / "config.yaml"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = tmp_path / "paper_figures" / "tinycyc"
    files = json.loads((out / "MANIFEST.json").read_text())["files"]
    for name in ("cycling.pdf", "cycling.png"):
        assert files[name]["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    data = pd.read_csv(tmp_path / "results" / "figdata" / "tinycyc" / "cycling.csv")
    assert list(pd.unique(data["metric"])) == [f"eval_return.{t}" for t in TASKS] + [
        "fau.critic",
        "fau.actor",
        "cycle.phase",
    ]
    assert list(pd.unique(data["group"])) == ["TD3", "NE"]
    phase = data[(data.metric == "cycle.phase") & (data.group == "TD3")].set_index("step")["point"]
    assert phase.to_dict() == {100: 0.0, 200: 1.0, 300: 2.0, 400: 3.0}
