"""The Snakemake workflow: dry runs of both configs, lint, config errors before any job, the tiny DAG end to
end (train → aggregate → statistics → every figure/table → MANIFEST → report), deterministic re-rendering,
aggregation refusing a run without `done`, a second DAG on the same results directory, and the compute estimate."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest

from neuroplastic import figures, locks
from neuroplastic.events import read_scalars
from neuroplastic.experiments import plan_from_file
from tests.workflow.helpers import REPO, load_config, neuroplastic, snakemake, tiny_config, write_yaml

pytestmark = pytest.mark.workflow


def _job_counts(stdout: str) -> dict[str, int]:
    table = stdout[stdout.index("Job stats:") :]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_dry_run_lists_every_run_and_figure(name, tmp_path):
    proc = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / f"{name}.yaml"), "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout)
    plan = plan_from_file(REPO / "config" / f"{name}.yaml")
    # One job per distinct run, or per batch of `train.runs_per_job` runs; every run trained exactly once.
    batches = plan.train_batches()
    assert counts.get("train", 0) == len(plan.runs) - sum(len(ids) for ids in batches.values())
    assert sorted(k for k in counts if k.startswith("train_batch_")) == sorted(batches)
    if name == "smoke":  # every smoke run is batched, `runs_per_job` per job, all in one resource class
        assert sorted(r for ids in batches.values() for r in ids) == sorted(plan.runs)
        assert len(batches) == math.ceil(len(plan.runs) / plan.config["train"]["runs_per_job"])
    else:
        assert not batches
    assert counts["aggregate"] == len(plan.config["experiments"])
    assert counts["figure_data"] == len(plan.config["figures"])
    assert counts.get("render_figure", 0) + counts.get("render_table", 0) == len(plan.config["figures"])
    if name == "paper":
        assert 'steps": 1000000' in plan.run_config_text(next(iter(plan.runs)))


def test_lint_is_clean(tmp_path):
    proc = snakemake(tmp_path, "--lint", "--configfile", str(REPO / "config" / "smoke.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.update(colour="red"), r"<top level>: unknown key 'colour'"),
        (
            lambda c: next(iter(c["experiments"].values()))["variants"].append(
                {"label": "Bogus", "method": [{"name": "bogus_method"}]}
            ),
            r"experiments\.main_mujoco\.variants\[\d+\] \(Bogus\), env [\w-]+: "
            r"method\[0\]\.name: unknown method 'bogus_method'",
        ),
        (
            lambda c: next(iter(c["experiments"].values())).update(envs=["Pong-v0"]),
            r"experiments\.main_mujoco.*unknown env 'Pong-v0'",
        ),
    ],
    ids=["unknown-key", "unknown-method", "unknown-env"],
)
def test_bad_config_stops_before_any_job(mutate, expected, tmp_path):
    cfg = load_config(REPO / "config" / "smoke.yaml")
    mutate(cfg)
    write_yaml(cfg, tmp_path / "bad.yaml")
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), "--cores", "1")
    assert proc.returncode != 0
    assert re.search(expected, proc.stdout + proc.stderr), proc.stderr[-3000:]
    assert not (tmp_path / "results").exists()


def test_overlay_is_merged_by_the_snakefile_and_its_bad_keys_stop_before_any_job(tmp_path):
    """An overlay given with --configfile resolves `include:` relative to itself; a key it may not change (here a
    figure) is an error that names it, before any job."""
    overlay = {"include": os.path.relpath(REPO / "config" / "smoke.yaml", tmp_path), "name": "mine"}
    write_yaml({**overlay, "figures": {}}, tmp_path / "bad.yaml")
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), "--cores", "1")
    assert proc.returncode != 0
    assert "<top level>.figures: an overlay may not set 'figures'" in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "results").exists()


def _manifest(directory: Path) -> dict:
    return json.loads((directory / "MANIFEST.json").read_text())["files"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_dag(tmp_path_factory):
    """The smoke config cut to 1 env, 2 variants, 2 seeds and 600 steps, run end to end with 2 cores."""
    work = tmp_path_factory.mktemp("dag")
    cfg = tiny_config(name="tiny", envs=1, variants=2, seeds=2)
    write_yaml(cfg, work / "config.yaml")
    proc = snakemake(
        work,
        "--profile",
        str(REPO / "workflow" / "profiles" / "local"),
        "--cores",
        "2",
        "--configfile",
        str(work / "config.yaml"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work, cfg


def test_tiny_dag_renders_every_figure_with_manifest(tiny_dag):
    work, cfg = tiny_dag
    out = work / "paper_figures" / "tiny"
    manifest = _manifest(out)
    for fig, spec in cfg["figures"].items():
        for ext in figures.suffixes(spec["kind"]):
            name = f"{fig}{ext}"
            assert name in manifest, name
            assert manifest[name]["sha256"] == _sha(out / name)
    assert len(list((work / "results" / "runs").iterdir())) == 4
    for bench in (work / "results" / "benchmarks" / "train").iterdir():
        assert bench.read_text().startswith("s\th:m:s")
    final = (work / "results" / "aggregate" / "tiny" / "main_mujoco" / "final.csv").read_text()
    assert final.count("eval_return") == 4  # 2 variants × 2 seeds × 1 env


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_a_second_dag_on_the_same_results_directory_is_refused(tiny_dag):
    """While a DAG runs on results/, a second one (here a different config, whose files Snakemake's own lock would
    let through) stops before any job, saying who holds the directory and what to do; nothing changes."""
    work, _ = tiny_dag
    lock = work / "results" / "dag.lock"
    assert "snakemake" in json.loads(lock.read_text())["command"]  # the tiny DAG's Snakemake held it
    other = tiny_config(name="other", envs=1, variants=1, seeds=1, figure_kinds=("final_table",))
    write_yaml(other, work / "other.yaml")
    with locks.held(lock, "results", "the first DAG"):
        before = {k: v for k, v in _tree(work / "results").items() if k != "dag.lock"}
        proc = snakemake(work, "--cores", "1", "--configfile", str(work / "other.yaml"))
        assert proc.returncode != 0
        log = proc.stdout + proc.stderr
        assert f"results directory {(work / 'results').resolve()} is in use by pid {os.getpid()}" in log, log[-3000:]
        assert "Wait for it to finish (or stop it), or give this DAG its own working directory" in log
        assert {k: v for k, v in _tree(work / "results").items() if k != "dag.lock"} == before
        assert not (work / "paper_figures" / "other").exists()
        # Looking is allowed: a dry run takes no lock.
        dry = snakemake(work, "-n", "--cores", "1", "--configfile", str(work / "other.yaml"))
        assert dry.returncode == 0, dry.stderr[-3000:]


def test_rerendering_gives_identical_sha256(tiny_dag):
    """Recompute every figure's statistics and re-render everything: MANIFEST.json is byte-identical."""
    work, _ = tiny_dag
    out = work / "paper_figures" / "tiny"
    before = (out / "MANIFEST.json").read_bytes()
    proc = snakemake(work, "--cores", "2", "--configfile", str(work / "config.yaml"), "--forcerun", "figure_data")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "figure_data" in proc.stdout + proc.stderr  # the statistics really ran again
    assert (out / "MANIFEST.json").read_bytes() == before
    # And the render step alone, into a fresh directory, from the same figure data.
    spec_dir = work / "results" / "figspecs" / "tiny"
    for spec in spec_dir.glob("*.json"):
        data = work / "results" / "figdata" / "tiny" / f"{spec.stem}.csv"
        proc = neuroplastic(
            "figures",
            "render",
            "--spec",
            str(spec),
            "--data",
            str(data),
            "--out",
            str(work / "again" / spec.stem),
            cwd=work,
        )
        assert proc.returncode == 0, proc.stderr
    for name, entry in _manifest(out).items():
        assert _sha(work / "again" / name) == entry["sha256"], name


def test_aggregation_fails_naming_a_run_without_done(tiny_dag, tmp_path):
    work, _ = tiny_dag
    runs = tmp_path / "runs"
    shutil.copytree(work / "results" / "runs", runs)
    table = work / "results" / "tables" / "tiny" / "main_mujoco.json"
    victim = json.loads(table.read_text())["members"][3]["run_id"]
    (runs / victim / "done").unlink()
    proc = neuroplastic("aggregate", "--table", str(table), "--runs", str(runs), "--out", str(tmp_path / "agg"))
    assert proc.returncode == 1
    assert f"run {victim}" in proc.stderr and "done is missing" in proc.stderr
    assert not (tmp_path / "agg" / "final.parquet").exists()


def test_report_contains_every_figure(tiny_dag):
    work, cfg = tiny_dag
    report = work / "report.html"
    proc = snakemake(work, "--configfile", str(work / "config.yaml"), "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text()
    for fig, spec in cfg["figures"].items():
        assert fig in html
        caption = spec["caption"].split("(")[0].strip()[:40]
        # The report embeds captions as JSON strings, with non-ASCII characters \u-escaped.
        assert caption in html or json.dumps(caption)[1:-1] in html, caption


def test_tiny_dag_runs_appear_in_tensorboard_under_readable_names(tiny_dag):
    work, _ = tiny_dag
    tree = work / "results" / "tensorboard" / "tiny"
    plan = plan_from_file(work / "results" / "plans" / "tiny.json")
    for m in plan.members:
        link = tree / m.experiment / m.variant / m.env / f"seed{m.seed}"
        assert link.resolve() == (work / "results" / "runs" / m.run_id).resolve()
        assert [s for s, _ in read_scalars(link)["eval_return"]] == [300, 600]


def test_estimate_counts_runs_and_hours():
    proc = neuroplastic(
        "estimate",
        "--configfile",
        str(REPO / "config" / "paper.yaml"),
        "--cpu-updates-per-s",
        "100",
        "--gpu-updates-per-s",
        "400",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    est = json.loads(proc.stdout)
    plan = plan_from_file(REPO / "config" / "paper.yaml")
    steps = sum(int(r["steps"]) for r in plan.runs.values())
    assert est["runs"] == len(plan.runs) and est["env_steps"] == steps
    assert est["cpu_hours"] == pytest.approx(steps / 100 / 3600)
    assert est["gpu_hours"] == pytest.approx(steps / 400 / 3600)


def test_estimate_answers_from_stored_measurements():
    """The paper estimate reads the packaged throughput JSON (no timing here) and says where each rate is from:
    every class has a figure or n/a with its reason; the DMC pixel part is costed on CPU; GPU figures are
    published ones only."""
    proc = neuroplastic("estimate", "--configfile", str(REPO / "config" / "paper.yaml"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"CPU rates: .*measured on .+, 1 thread\(s\), 20\d\d-", out), out[:600]
    assert "GPU rates: published on NVIDIA H100 (LeanRL's node)" in out and "LeanRL README" in out
    for part in ("MuJoCo", "DMC pixels", "Atari", "classic control", "MuJoCo PPO", "cycling"):
        assert re.search(rf"^part: {part}\s+\d+\s+[\d,]+\s+(n/a|[\d.]+)\s+(n/a|[\d.]+)$", out, re.M), (part, out)
    rates = re.findall(r"^    (CPU|GPU)\s+(\S+)\s+(\S+)\s+(.*)$", out, re.M)
    assert rates and all(device == "GPU" or source in ("measured", "n/a") for device, _, source, _ in rates)
    # Every CPU class of the paper grid is measured, so every part has CPU-hours.
    cpu_gaps = [reason for device, _, source, reason in rates if device == "CPU" and source == "n/a"]
    assert not cpu_gaps, cpu_gaps
    assert re.search(r"^total \(deduplicated\)\s+\d+\s+[\d,]+\s+[\d.]+\s", out, re.M), out[-800:]
    assert {source for _, _, source, _ in rates} == {"measured", "published", "n/a"}
    assert all(value == "n/a" and len(reason) > 40 for _, value, source, reason in rates if source == "n/a")
    # DrQ-v2 and DQN have no GPU figure, stored or published: n/a with what was searched.
    assert "no published GPU throughput found: the DrQ-v2 paper" in out
    assert "no published GPU throughput found: CleanRL's DQN docs" in out


@pytest.mark.parametrize("engine", ["apptainer", "docker"])
@pytest.mark.parametrize(
    ("runs_per_job", "rule", "command"), [(1, "train", "train"), (2, "train_batch_0", "train-batch")]
)
def test_container_enabled_builds_the_image_then_trains_inside_it(engine, runs_per_job, rule, command, tmp_path):
    cfg = tiny_config(name="ctr", envs=1, variants=1, seeds=2)
    cfg["train"]["runs_per_job"] = runs_per_job
    cfg["container"] = {"enabled": True, "engine": engine, "tag": "t1", "base_image": "localhost/base:min"}
    write_yaml(cfg, tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "-n", "-p", "--cores", "1", "--configfile", str(tmp_path / "config.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    digest = f"results/container/{engine}-t1.digest"
    build = re.search(r"Shell command: (.*containers/build\.sh .*)", out).group(1)
    assert f"--engine {engine} --tag neuroplastic:t1 --digest-file {digest}" in build
    assert "--base-image localhost/base:min" in build
    train = re.search(rf"Shell command: (.* neuroplastic {command} .*)", out).group(1)
    assert f'NEUROPLASTIC_CONTAINER_DIGEST="$(cat {digest})"' in train
    if engine == "apptainer":
        assert (
            train.startswith("exec apptainer exec --nv ")
            and f" results/container/neuroplastic.sif neuroplastic {command} " in train
        )
    else:
        assert train.startswith("exec docker run --rm --gpus all ")
        assert f'"$(cat {digest})" neuroplastic {command} ' in train
    if engine == "apptainer":
        assert "--sif results/container/neuroplastic.sif" in build
    # The image is an input of the training job.
    train_block = out[out.index(f"rule {rule}:") :]
    assert digest in train_block[: train_block.index("output:")]
