"""`neuroplastic status`: where a grid stands, from the files its runs leave, without opening a single one fully.

For every run of a workflow config's plan (the same plan `neuroplastic plan` and the Snakefile build), the state:
- `done`: its `done` file exists (or the manifest and parquet of a finished run whose `done` was removed);
- `failed`: its training log (`results/logs/train/<run_id>.log`) ends in an error written after its last log
  event, or it has not written anything for `stale_after` seconds (killed: out of memory, out of time), or it
  was started on this host by a process that no longer exists;
- `running`: it wrote within `stale_after` seconds (and its process, when on this host, is alive);
- `not started`: neither a run directory nor a log.
Only the last bytes of `metrics.jsonl` and of the log are read, and `attempt.json`/`manifest.json` (a few bytes),
so a 1,799-run grid answers in about a second.

Progress is counted in env steps (last logged step of unfinished runs). The ETA is the remaining env steps of each
unfinished run at its measured speed (its own, while it runs; otherwise the mean of finished and running runs
with the same agent, env and methods, else the same agent and env, else all), divided by the number of runs
running now. A run's speed counts from the start of its current attempt, random-action steps included.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from neuroplastic import runlog

STATES = ("done", "running", "failed", "not started")
TAIL_BYTES = 16 * 1024
EVAL_SEARCH_BYTES = 1 << 20
DETAIL_CHARS = 160  # of a log line in the text report (--json has it whole)
WARNING_LINE = re.compile(r"^WARNING\b|Warning: |^\s*warnings\.warn\(")
ERROR_LINE = re.compile(r"error|exception|traceback|killed|cancelled|out of memory|oom-kill", re.IGNORECASE)


@dataclass
class RunStatus:
    run_id: str
    state: str
    steps: int  # the run's budget
    step: int = 0  # last logged env step
    eval_return: float | None = None
    eval_step: int | None = None
    steps_per_s: float | None = None
    seconds_since_write: float | None = None
    detail: str = ""  # failed: the last line of its log; running: notes such as an incomplete last line


def _tail(path: Path, nbytes: int) -> tuple[bytes, bool]:
    """The last `nbytes` of a file and whether they start at a line boundary (the file's start)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - nbytes)
        f.seek(start)
        return f.read(), start == 0


def _complete_lines(data: bytes, from_start: bool) -> tuple[list[bytes], bool]:
    """Whole lines of a tail (the first is cut unless the tail is the whole file), and whether the last is cut."""
    lines = data.split(b"\n")
    partial = lines.pop() != b""  # text after the last newline: a line being (or never finished being) written
    if not from_start and lines:
        lines.pop(0)
    return [ln + b"\n" for ln in lines if ln.strip()], partial


def last_log_events(path: Path) -> tuple[int, float | None, int | None, str]:
    """(last step, last eval_return, its step, note) from the tail of a `metrics.jsonl`."""
    nbytes, note = TAIL_BYTES, ""
    while True:
        data, whole = _tail(path, nbytes)
        lines, partial = _complete_lines(data, whole)
        if partial:
            note = f"{path.name}: incomplete last line (killed while writing?)"
        step, ret, ret_step = 0, None, None
        for i, raw in enumerate(reversed(lines)):
            try:
                s, metrics = runlog.parse_log_line(raw, str(path))
            except runlog.MetricsLineError:
                note = f"{path.name}: corrupt line {i + 1} lines from the end"
                break
            step = step or s
            if "eval_return" in metrics:
                ret, ret_step = metrics["eval_return"], s
                break
        if ret is not None or note.endswith("from the end") or whole or nbytes >= EVAL_SEARCH_BYTES:
            return step, ret, ret_step, note
        nbytes = EVAL_SEARCH_BYTES


def last_line(path: Path) -> str:
    """The log's last line that is not a warning (mujoco prints one for every env it builds); '' if none."""
    data, _ = _tail(path, 8192)
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines()]
    told = [ln for ln in lines if ln and not WARNING_LINE.search(ln)]
    return told[-1] if told else ""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def run_status(run_id: str, steps: int, run_dir: Path, log: Path, now: float, stale_after: float) -> RunStatus:
    st = RunStatus(run_id, "not started", steps)
    metrics_path = run_dir / runlog.METRICS_JSONL
    metrics_mtime = _mtime(metrics_path)
    if metrics_mtime is not None:
        st.step, st.eval_return, st.eval_step, st.detail = last_log_events(metrics_path)
    # A finished run whose `done` Snakemake removed (it does for every job of a failed job group) is complete:
    # the manifest is written only after metrics.parquet; its next `neuroplastic train` restores `done`.
    finished = (run_dir / runlog.MANIFEST_JSON).is_file() and (run_dir / runlog.METRICS_PARQUET).is_file()
    if (run_dir / runlog.DONE).exists() or finished:
        st.state = "done"
        man = _read_json(run_dir / runlog.MANIFEST_JSON) or {}
        st.step = int(man.get("env_steps") or steps)
        st.steps_per_s = man.get("env_steps_per_s")
        return st
    log_mtime = _mtime(log)
    last_write = max((t for t in (metrics_mtime, log_mtime, _mtime(run_dir / runlog.CONFIG_JSON)) if t), default=None)
    if last_write is None:
        return st
    st.seconds_since_write = round(now - last_write, 1)
    attempt = _read_json(run_dir / runlog.ATTEMPT_JSON)
    if attempt and metrics_mtime and st.step > attempt["step"] and metrics_mtime > attempt["time"]:
        st.steps_per_s = round((st.step - attempt["step"]) / (metrics_mtime - attempt["time"]), 3)
    line = last_line(log) if log_mtime is not None else ""
    gone = _process_gone(attempt)
    if line and ERROR_LINE.search(line) and log_mtime >= (metrics_mtime or 0):
        st.state, st.detail = "failed", line
    elif now - last_write <= stale_after and not gone:
        st.state = "running"
    else:
        st.state = "failed"
        silent = gone or f"no output for {format_duration(now - last_write)} (killed?)"
        st.detail = f"{silent}; last log line: {line}" if line else silent
    return st


def _process_gone(attempt: dict[str, Any] | None) -> str:
    """A note when the attempt's process ran on this host and has exited without finishing the run; else ''."""
    if not attempt or attempt.get("host") != socket.gethostname() or not attempt.get("pid"):
        return ""
    try:
        os.kill(int(attempt["pid"]), 0)
    except ProcessLookupError:
        return f"its process {attempt['pid']} on this host is gone (killed?)"
    except PermissionError:  # alive, another user's
        return ""
    return ""


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {s:02d}s" if m else f"{s}s"


def _eta(plan: Any, runs: dict[str, RunStatus]) -> dict[str, Any]:
    def kinds(rid: str) -> tuple[tuple[str, ...], ...]:
        """From the closest to the broadest group of runs whose speed stands in for an unmeasured run's."""
        cfg = plan.runs[rid]
        agent_env = (cfg["agent"]["name"], cfg["env"])
        return (*agent_env, *(m["name"] for m in cfg["method"])), agent_env, ()

    measured: dict[tuple[str, ...], list[float]] = {}
    for rid, st in runs.items():
        if st.steps_per_s and st.state in ("done", "running"):
            for kind in kinds(rid):
                measured.setdefault(kind, []).append(st.steps_per_s)
    every = measured.get((), [])
    running = [st for st in runs.values() if st.state == "running"]
    remaining_s, unmeasured = 0.0, 0
    for rid, st in runs.items():
        if st.state == "done":
            continue
        if st.state == "running" and st.steps_per_s:
            rates = [st.steps_per_s]
        else:
            rates = next((measured[k] for k in kinds(rid) if k in measured), [])
        if not rates:
            unmeasured += 1
            continue
        remaining_s += max(st.steps - st.step, 0) / (sum(rates) / len(rates))
    eta = remaining_s / len(running) if running and not unmeasured else None
    why = None
    if eta is None:
        why = "no run is running" if not running else f"{unmeasured} runs have no measured speed yet"
    return {
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "eta_unknown_because": why,
        "remaining_run_seconds": round(remaining_s, 1),
        "running": len(running),
        "mean_steps_per_s": round(sum(every) / len(every), 3) if every else None,
    }


def grid_status(
    plan: Any, runs_dir: Path, logs_dir: Path, stale_after: float = 1800.0, now: float | None = None
) -> dict[str, Any]:
    """The status of every run of `plan`, grouped by experiment, with the grid's progress and ETA."""
    now = time.time() if now is None else now
    runs = {
        rid: run_status(rid, int(cfg["steps"]), runs_dir / rid, logs_dir / f"{rid}.log", now, stale_after)
        for rid, cfg in plan.runs.items()
    }
    total = sum(st.steps for st in runs.values())
    done_steps = sum(min(st.step, st.steps) for st in runs.values())
    experiments: dict[str, Any] = {}
    for m in plan.members:
        exp = experiments.setdefault(m.experiment, {"counts": dict.fromkeys(STATES, 0), "members": []})
        st = runs[m.run_id]
        exp["counts"][st.state] += 1
        exp["members"].append({"variant": m.variant, "env": m.env, "seed": m.seed, **asdict(st)})
    return {
        "config": plan.name,
        "runs": len(runs),
        "counts": {s: sum(st.state == s for st in runs.values()) for s in STATES},
        "env_steps": {"done": done_steps, "total": total, "fraction": round(done_steps / total, 4) if total else 1.0},
        **_eta(plan, runs),
        "experiments": experiments,
    }


def _fmt_steps(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(int(n))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def format_report(status: dict[str, Any], show_all: bool = False) -> str:
    steps = status["env_steps"]
    lines = [
        f"{status['config']}: {status['runs']} runs: {_counts(status['counts'])}",
        f"env steps: {_fmt_steps(steps['done'])} / {_fmt_steps(steps['total'])} ({100 * steps['fraction']:.1f}%)",
    ]
    if status["eta_seconds"] is not None:
        lines[-1] += (
            f"; ETA {format_duration(status['eta_seconds'])} at {status['running']} "
            f"run{'s' * (status['running'] != 1)} in parallel "
            f"(mean {status['mean_steps_per_s']:.0f} env steps/s per run)"
        )
    elif status["counts"]["done"] < status["runs"]:
        lines[-1] += f"; ETA unknown: {status['eta_unknown_because']}"
    for exp, info in status["experiments"].items():
        lines += ["", f"{exp}: {_counts(info['counts'])}"]
        shown = [m for m in info["members"] if show_all or m["state"] in ("running", "failed")]
        width = max((len(m["variant"]) for m in shown), default=0)
        envw = max((len(m["env"]) for m in shown), default=0)
        for m in shown:
            head = f"  {m['state']:<11} {m['variant']:<{width}}  {m['env']:<{envw}}  seed{m['seed']:<3} {m['run_id']}"
            lines.append(f"{head}  {_run_detail(m)}".rstrip())
    return "\n".join(lines) + "\n"


def _run_detail(m: dict[str, Any]) -> str:
    parts = []
    if m["state"] != "not started":
        parts.append(f"step {m['step']}/{m['steps']}")
    if m["eval_return"] is not None and math.isfinite(m["eval_return"]):
        parts.append(f"eval_return {m['eval_return']:.1f} @ {m['eval_step']}")
    if m["steps_per_s"] and m["state"] in ("running", "done"):
        parts.append(f"{m['steps_per_s']:.0f} steps/s")
    if m["detail"]:
        detail = m["detail"]
        parts.append(detail if len(detail) <= DETAIL_CHARS else detail[: DETAIL_CHARS - 3] + "...")
    return "  ".join(parts)
