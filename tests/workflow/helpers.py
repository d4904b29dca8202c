"""Shared helpers of the workflow tests: derived configs and Snakemake invocations in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from neuroplastic.overlay import load_workflow_config

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def load_config(path: Path) -> dict[str, Any]:
    """A committed workflow config as Snakemake plans it: an overlay (smoke.yaml) merged into what it includes."""
    return load_workflow_config(path)


def write_yaml(data: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_config(
    name: str = "tiny", envs: int = 1, variants: int = 2, seeds: int = 2, figure_kinds: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """A subset of config/smoke.yaml: its first experiment cut to `envs` envs, `variants` variants, `seeds`
    seeds and 600 steps, with the smoke figures of that experiment (optionally only some kinds)."""
    cfg = load_config(REPO / "config" / "smoke.yaml")
    cfg["name"] = name
    cfg["run"].update({"steps": 600, "start_steps": 300, "eval_every": 300, "log_every": 300})
    exp_name = next(iter(cfg["experiments"]))
    exp = cfg["experiments"][exp_name]
    exp["envs"] = exp["envs"][:envs]
    exp["variants"] = exp["variants"][:variants]
    exp["seeds"] = seeds
    cfg["experiments"] = {exp_name: exp}
    figures = {}
    for fig, spec in cfg["figures"].items():
        if spec["experiment"] != exp_name or (figure_kinds and spec["kind"] not in figure_kinds):
            continue
        if spec["kind"] == "probability_of_improvement":
            if variants < 2:
                continue
            spec = {**spec, "target": exp["variants"][-1]["label"]}
        if spec.get("labels"):
            continue
        figures[fig] = spec
    cfg["figures"] = figures
    return cfg


def env() -> dict[str, str]:
    out = dict(os.environ)
    src = str(REPO / "src")
    out["PYTHONPATH"] = src + (os.pathsep + out["PYTHONPATH"] if out.get("PYTHONPATH") else "")
    out.setdefault("MUJOCO_GL", "egl")
    return out


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=timeout, cwd=workdir)


def snakemake_popen(workdir: Path, *args: str) -> subprocess.Popen:
    """Snakemake in the background (for tests that act on a run while the workflow is going)."""
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(), cwd=workdir)


def neuroplastic(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "neuroplastic.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=timeout, cwd=cwd or REPO)
