"""Watching a reproduction: TensorBoard event files, `neuroplastic status` on planted runs, `neuroplastic plot`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from neuroplastic import cli, config, events, loop, runlog, runs
from neuroplastic.experiments import plan_from_dict
from neuroplastic.status import grid_status
from tests.conftest import tiny_config
from tests.workflow.helpers import tiny_config as tiny_workflow_config

SMALL_TD3 = {"name": "td3", "hidden": 32, "batch_size": 32}


def _parquet_pairs(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    df = pd.read_parquet(run_dir / "metrics.parquet")
    # TensorBoard scalars are float32 (`simple_value`), so the parquet values are compared after that rounding.
    return {
        m: [(int(s), float(np.float32(v))) for s, v in zip(g.step, g.value, strict=True)]
        for m, g in df.groupby("metric")
    }


def test_event_files_hold_the_same_step_value_pairs_as_metrics_parquet(tmp_path):
    cfg = runs.resolve(tiny_config(agent=SMALL_TD3, steps=600, log_every=200, eval_every=300))
    loop.train(cfg, tmp_path / "run", ckpt_dir=tmp_path / "ckpt", progress=False)
    assert len(events.event_files(tmp_path / "run")) == 1
    scalars = events.read_scalars(tmp_path / "run")
    expected = _parquet_pairs(tmp_path / "run")
    assert {"eval_return", "critic_loss", "actor_loss"} <= set(expected)
    assert scalars == expected
    assert [s for s, _ in scalars["eval_return"]] == [300, 600]


def test_tensorboard_off_writes_no_event_file_and_keeps_the_run_id(tmp_path):
    args = cli.build_parser().parse_args(["train", "cfg.yaml", "--out", "x", "--no-tensorboard"])
    assert args.tensorboard is False
    assert cli.build_parser().parse_args(["train", "cfg.yaml", "--out", "x"]).tensorboard is True
    cfg = runs.resolve(tiny_config(agent=SMALL_TD3, steps=400, log_every=200, eval_every=400))
    loop.train(cfg, tmp_path / "run", ckpt_dir=tmp_path / "ckpt", progress=False, tensorboard=False)
    assert events.event_files(tmp_path / "run") == []
    assert json.loads((tmp_path / "run" / "done").read_text())["run_id"] == config.run_id(cfg)


class _Killed(BaseException):
    """Stands in for SIGKILL: unwinds the loop without the normal end of a run."""


def test_resume_after_a_kill_rebuilds_the_events_without_duplicated_steps(tmp_path, monkeypatch):
    """Killed past a checkpoint, mid-way through an event record: the resumed run's event files match the parquet."""
    cfg = runs.resolve(tiny_config(agent=SMALL_TD3, steps=700, log_every=100, eval_every=300, checkpoint_every=300))
    out, ckpt = tmp_path / "run", tmp_path / "ckpt"
    write = runlog.MetricsLog.write

    def write_then_die_at_500(self, step, metrics):
        write(self, step, metrics)
        if step == 500:
            raise _Killed

    monkeypatch.setattr(runlog.MetricsLog, "write", write_then_die_at_500)
    with pytest.raises(_Killed):
        loop.train(cfg, out, ckpt_dir=ckpt, progress=False)
    monkeypatch.setattr(runlog.MetricsLog, "write", write)
    [first] = events.event_files(out)
    with open(first, "ab") as f:  # a record cut short by the kill
        f.write(b"\x20\x00\x00\x00\x00\x00\x00\x00\x01\x02")
    before = events.read_scalars(out)
    assert [s for s, _ in before["updates"]] == [300, 400, 500]  # logged past the step-300 checkpoint
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    first_walls = {e.step: e.wall_time for e in LegacyEventFileLoader(str(first)).Load() if e.summary.value}

    loop.train(cfg, out, ckpt_dir=ckpt, progress=False)
    [fresh] = events.event_files(out)
    assert fresh != first
    scalars = events.read_scalars(out)
    assert scalars == _parquet_pairs(out)
    for pairs in scalars.values():
        steps = [s for s, _ in pairs]
        assert steps == sorted(set(steps))  # each step once
    assert [s for s, _ in scalars["eval_return"]] == [300, 600]
    assert [s for s, _ in scalars["updates"]] == [300, 400, 500, 600, 700]
    walls = {e.step: e.wall_time for e in LegacyEventFileLoader(str(fresh)).Load() if e.summary.value}
    # Kept events keep their wall time; the ones after the checkpoint were written again, later.
    assert all(walls[s] == first_walls[s] for s in (100, 200, 300))
    assert walls[400] > first_walls[400]


def test_event_log_of_a_run_restarted_from_scratch_is_emptied(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    log = runlog.MetricsLog(run / "metrics.jsonl", tensorboard=True)
    log.open(0)
    log.write(10, {"a": 1.0})
    log.close()
    log = runlog.MetricsLog(run / "metrics.jsonl", tensorboard=True)
    log.open(0)  # no checkpoint: everything is redone
    log.close()
    assert events.read_scalars(run) == {}
    assert (run / "metrics.jsonl").read_bytes() == b""


# ---------------------------------------------------------------------------------------------------------------
# status on planted runs (no training)

NOW = 1_800_000_000.0


def _plant(run_dir: Path, lines: list[tuple[int, dict]], mtime: float, attempt: dict | None = None, tail: bytes = b""):
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}\n")
    text = b"".join(json.dumps({"step": s, "metrics": m}).encode() + b"\n" for s, m in lines) + tail
    (run_dir / "metrics.jsonl").write_bytes(text)
    if attempt:
        (run_dir / "attempt.json").write_text(json.dumps(attempt))
    for f in run_dir.iterdir():
        os.utime(f, (mtime, mtime))


def _log(logs: Path, rid: str, text: str, mtime: float) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{rid}.log").write_text(text)
    os.utime(logs / f"{rid}.log", (mtime, mtime))


@pytest.fixture
def planted(tmp_path):
    """Six runs of 600 steps: done, running, running with a half-written line, failed, killed (silent), missing."""
    plan = plan_from_dict(tiny_workflow_config(name="tiny", envs=1, variants=2, seeds=3))
    rids = [m.run_id for m in plan.members]
    assert len(set(rids)) == 6 and all(plan.runs[r]["steps"] == 600 for r in rids)
    runs, logs = tmp_path / "results" / "runs", tmp_path / "results" / "logs" / "train"
    done, running, half, failed, killed, _ = rids
    _plant(runs / done, [(300, {"eval_return": 10.0}), (600, {"eval_return": 20.0})], NOW - 900)
    (runs / done / "done").write_text("{}")
    (runs / done / "metrics.parquet").write_bytes(b"")
    (runs / done / "manifest.json").write_text(json.dumps({"env_steps": 600, "env_steps_per_s": 2.0}))
    lines = [(300, {"critic_loss": 1.0, "eval_return": 5.5}), (400, {"critic_loss": 0.5})]
    this_process = {"host": socket.gethostname(), "pid": os.getpid()}
    _plant(runs / running, lines, NOW - 10, attempt={"step": 0, "time": NOW - 210, **this_process})
    _plant(runs / half, [(300, {"eval_return": 7.0})], NOW - 5, {"step": 0, "time": NOW - 305}, b'{"step": 4')
    _plant(runs / failed, [(300, {"eval_return": 1.0})], NOW - 100)
    _log(logs, failed, "[x] resumed from checkpoint at step 200\nerror: non-finite loss before step 400\n", NOW - 60)
    _plant(runs / killed, [(300, {"eval_return": 3.0})], NOW - 7200)
    warning = "WARNING: compiler attribute 'settotalmass' is deprecated\n"
    _log(logs, killed, "[x] resumed from checkpoint at step 200\n" + warning, NOW - 7200)
    return plan, runs, logs, dict(zip(("done", "running", "half", "failed", "killed", "missing"), rids, strict=True))


def test_status_reports_each_planted_run(planted):
    plan, runs, logs, rid = planted
    status = grid_status(plan, runs, logs, stale_after=1800, now=NOW)
    by_id = {m["run_id"]: m for exp in status["experiments"].values() for m in exp["members"]}
    assert status["counts"] == {"done": 1, "running": 2, "failed": 2, "not started": 1}
    assert by_id[rid["done"]]["state"] == "done" and by_id[rid["done"]]["eval_return"] == 20.0
    run = by_id[rid["running"]]
    assert (run["state"], run["step"], run["eval_return"], run["eval_step"]) == ("running", 400, 5.5, 300)
    assert run["steps_per_s"] == 2.0  # 400 steps in the 200 s between the attempt's start and the last write
    half = by_id[rid["half"]]
    assert (half["state"], half["step"], half["eval_return"]) == ("running", 300, 7.0)
    assert "incomplete last line" in half["detail"]
    assert by_id[rid["failed"]]["state"] == "failed"
    assert by_id[rid["failed"]]["detail"] == "error: non-finite loss before step 400"
    killed = by_id[rid["killed"]]
    assert killed["state"] == "failed"
    assert killed["detail"] == "no output for 2h 00m (killed?); last log line: [x] resumed from checkpoint at step 200"
    assert by_id[rid["missing"]]["state"] == "not started" and by_id[rid["missing"]]["step"] == 0
    # A finished run whose `done` a failed Snakemake job group removed is still done (manifest + parquet).
    (runs / rid["done"] / "done").unlink()
    assert grid_status(plan, runs, logs, stale_after=1800, now=NOW)["counts"] == status["counts"]
    (runs / rid["done"] / "manifest.json").unlink()
    assert grid_status(plan, runs, logs, stale_after=1800, now=NOW)["counts"]["done"] == 0
    # 600 + 400 + 300 + 300 + 300 + 0 of 3600 env steps.
    assert status["env_steps"] == {"done": 1900, "total": 3600, "fraction": round(1900 / 3600, 4)}
    # Remaining run time: running 200/2.0, half 300/1.0 (their own speeds); failed, killed and missing (the
    # second variant, none measured) 300, 300, 600 steps at the mean speed of the same agent on the same env
    # (the first variant's done 2.0, running 2.0, half 1.0 → 5/3).
    remaining = 100 + 300 + (300 + 300 + 600) / (5 / 3)
    assert status["remaining_run_seconds"] == pytest.approx(remaining, abs=0.1)
    assert status["eta_seconds"] == pytest.approx(remaining / 2, abs=0.1)


def test_status_calls_a_run_whose_process_on_this_host_is_gone_failed(tmp_path):
    from neuroplastic.status import run_status

    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    attempt = {"step": 0, "time": NOW - 100, "host": socket.gethostname(), "pid": int(exited.stdout)}
    _plant(tmp_path / "run", [(300, {"eval_return": 1.0})], NOW - 10, attempt)
    st = run_status("r", 600, tmp_path / "run", tmp_path / "r.log", now=NOW, stale_after=1800)
    assert st.state == "failed" and st.detail == f"its process {exited.stdout.strip()} on this host is gone (killed?)"
    (tmp_path / "run" / "attempt.json").write_text(json.dumps({**attempt, "host": "another-node"}))
    st = run_status("r", 600, tmp_path / "run", tmp_path / "r.log", now=NOW, stale_after=1800)
    assert st.state == "running"  # on another host only the silence tells


def test_status_reads_only_the_tail_of_a_long_log(planted):
    """An eval row 4 MB before the end is beyond the 1 MiB that status searches: it is not found, the end is."""
    plan, runs, logs, rid = planted
    path = runs / rid["running"] / "metrics.jsonl"
    lines = [(1, {"eval_return": 99.0})] + [(s, {"critic_loss": 0.1, "pad": 1.0 / 3}) for s in range(2, 60_000)]
    path.write_bytes(b"".join(json.dumps({"step": s, "metrics": m}).encode() + b"\n" for s, m in lines))
    assert path.stat().st_size > 4 << 20
    t0 = time.perf_counter()
    status = grid_status(plan, runs, logs, now=NOW)
    assert time.perf_counter() - t0 < 5.0
    run = next(m for e in status["experiments"].values() for m in e["members"] if m["run_id"] == rid["running"])
    assert (run["step"], run["eval_return"]) == (59_999, None)


def test_status_cli_json_and_errors(planted, tmp_path, capsys, monkeypatch):
    plan, _, _, rid = planted
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(plan.config))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["status", "--configfile", str(cfg_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 6 and sum(out["counts"].values()) == 6
    assert cli.main(["status", "--configfile", str(cfg_path), "--all"]) == 0
    text = capsys.readouterr().out
    assert "error: non-finite loss before step 400" in text and rid["missing"] in text
    assert cli.main(["status", "--configfile", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: config file not found" in capsys.readouterr().err
    assert cli.main(["status", "--configfile", str(cfg_path), "--runs", "elsewhere"]) == 2
    assert "runs directory elsewhere does not exist" in capsys.readouterr().err


def test_tensorboard_tree_links_every_member_under_readable_names_and_drops_stale_ones(tmp_path, capsys):
    cfg = tiny_workflow_config(name="tiny", envs=1, variants=2, seeds=2)
    (tmp_path / "tiny.json").write_text(json.dumps(cfg))
    runs, tree = tmp_path / "results" / "runs", tmp_path / "results" / "tensorboard"
    args = ["tensorboard", "--configfile", str(tmp_path / "tiny.json"), "--runs", str(runs), "--out", str(tree)]
    assert cli.main(args) == 0
    plan = plan_from_dict(cfg)
    links = sorted(p for p in (tree / "tiny").rglob("*") if p.is_symlink())
    assert len(links) == 4
    for m in plan.members:
        link = tree / "tiny" / m.experiment / m.variant / m.env / f"seed{m.seed}"
        assert not os.path.isabs(os.readlink(link))  # relative: the tree moves with results/
        assert link.resolve() == (runs / m.run_id).resolve()
    assert "4 runs as <experiment>/<variant>/<env>/seed<k>" in capsys.readouterr().out
    # The plan loses its second variant: its links go, and so does its folder.
    first, second = plan.members[0].variant, plan.members[-1].variant
    kept = SimpleNamespace(members=[m for m in plan.members if m.variant == first])
    assert events.link_tree(kept, runs, tree / "tiny") == 2
    experiment = tree / "tiny" / plan.members[0].experiment
    assert sorted(p.name for p in experiment.iterdir()) == [first]
    assert second != first


# ---------------------------------------------------------------------------------------------------------------
# plot


def _plot_run(path: Path, seed: int, scale: float, tail: bytes = b"") -> Path:
    path.mkdir(parents=True)
    cfg = {"agent": {"name": "td3"}, "env": "Hopper-v4", "method": [{"name": "ne"}], "seed": seed}
    (path / "config.json").write_text(json.dumps(cfg))
    rows = [json.dumps({"step": s, "metrics": {"eval_return": scale * s, "critic_loss": 1 / s}}) for s in (1, 2, 3)]
    (path / "metrics.jsonl").write_bytes("\n".join(rows).encode() + b"\n" + tail)
    return path


def test_plot_renders_two_runs_and_refuses_an_unknown_metric(tmp_path, capsys):
    import matplotlib.image

    from neuroplastic.quickplot import labels, load_run

    a, b = _plot_run(tmp_path / "a", 0, 1.0), _plot_run(tmp_path / "b", 1, 2.0)
    assert labels([load_run(a), load_run(b)]) == (["seed 0", "seed 1"], "td3 ne Hopper-v4")
    png = tmp_path / "out" / "curves.png"
    assert (
        cli.main(["plot", str(a), str(b), "--metric", "eval_return", "--metric", "critic_loss", "--out", str(png)]) == 0
    )
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > image.shape[1] / 2  # two panels, one above the other
    assert image.std() > 0.05  # not a blank canvas

    assert cli.main(["plot", str(a), str(b), "--metric", "eval_retrun", "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "no run logged metric 'eval_retrun'" in err and "eval_return" in err
    assert not (tmp_path / "x.png").exists()


def test_plot_names_a_missing_run_dir_and_a_half_written_log(tmp_path, capsys):
    from neuroplastic.quickplot import load_run

    assert cli.main(["plot", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.strip() == f"error: run directory {tmp_path / 'nowhere'} does not exist"
    # A last line cut short (a live run writing it, or a killed one): the complete lines are plotted, with a warning.
    cut = _plot_run(tmp_path / "cut", 0, 1.0, tail=b'{"step": 4, "metr')
    assert cli.main(["plot", str(cut), "--out", str(tmp_path / "y.png")]) == 0
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"warning: {cut / 'metrics.jsonl'}:4: incomplete last line left out (being written, or the run was killed)"
    )
    assert (tmp_path / "y.png").is_file() and [s for s, _ in load_run(cut).curves["eval_return"]] == [1, 2, 3]
    # A broken line before the end is corruption, not a line being written: an error that names it.
    bad = _plot_run(tmp_path / "bad", 0, 1.0, tail=b'{"step": 4, "metr\n' + b'{"step": 5, "metrics": {}}\n')
    assert cli.main(["plot", str(bad), "--out", str(tmp_path / "z.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad / 'metrics.jsonl'}:4: corrupt metrics line") and "\n" not in err
    assert not (tmp_path / "z.png").exists()
