"""The run directory contract: `config.json`, `metrics.jsonl` → `metrics.parquet`, `manifest.json`, `done`.

`metrics.jsonl` holds one JSON object per log event, `{"step": s, "metrics": {name: value}}`, appended and
flushed as training goes, so a crash loses at most the line being written. On resume the file is cut back to
the byte offset recorded in the checkpoint. At the end it becomes `metrics.parquet` in long format
(`step`, `metric`, `value`). `done` is written last, by atomic rename: it is the only file other jobs trust.
Beside them, unless turned off: TensorBoard event files holding the same log events (see events.py), and
`attempt.json`, where the current training attempt started (`{"step", "time", "host", "pid"}`), from which
`neuroplastic status` measures a running run's speed and tells a live process from a killed one.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from neuroplastic import __version__
from neuroplastic.events import EventLog

METRICS_JSONL = "metrics.jsonl"
METRICS_PARQUET = "metrics.parquet"
CONFIG_JSON = "config.json"
MANIFEST_JSON = "manifest.json"
ATTEMPT_JSON = "attempt.json"
DONE = "done"

SCHEMA = pa.schema([("step", pa.int64()), ("metric", pa.string()), ("value", pa.float64())])


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MetricsLog:
    """`metrics.jsonl`, and its TensorBoard mirror when `tensorboard` is on (an execution option, not identity)."""

    def __init__(self, path: Path, tensorboard: bool = True) -> None:
        self.path = path
        self._f = None
        self._events = None
        if tensorboard:
            self._events = EventLog(path.parent)

    def open(self, offset: int = 0) -> None:
        """Open for appending after cutting the file back to `offset` bytes (the event files follow it)."""
        mode = "r+b" if self.path.exists() else "w+b"
        self._f = open(self.path, mode)  # noqa: SIM115 - kept open for the whole run
        self._f.truncate(offset)
        self._f.seek(offset)
        kept = read_log_events(self.path) if offset else []
        if self._events is not None:
            self._events.open(kept)
        start = kept[-1][0] if kept else 0
        attempt = {"step": start, "time": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
        atomic_write(self.path.parent / ATTEMPT_JSON, (json.dumps(attempt) + "\n").encode())

    def offset(self) -> int:
        return self._f.tell()

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not metrics:
            return
        line = json.dumps({"step": step, "metrics": metrics}, separators=(",", ":"), allow_nan=True)
        self._f.write(line.encode() + b"\n")
        self._f.flush()
        if self._events is not None:
            self._events.write(step, metrics)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        if self._events is not None:
            self._events.close()


class MetricsLineError(ValueError):
    """A `metrics.jsonl` line that is cut short (a killed run) or not a log event; the message names file:line."""


def parse_log_line(raw: bytes, where: str) -> tuple[int, dict[str, float]]:
    if not raw.endswith(b"\n"):
        raise MetricsLineError(f"{where}: incomplete metrics line (the run was killed while writing it?)")
    try:
        rec = json.loads(raw)
        return int(rec["step"]), {str(k): float(v) for k, v in rec["metrics"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise MetricsLineError(f"{where}: corrupt metrics line") from None


def read_log_events(path: Path) -> list[tuple[int, dict[str, float]]]:
    """Every log event of a `metrics.jsonl`: [(step, {metric: value})]."""
    with open(path, "rb") as f:
        return [parse_log_line(raw, f"{path}:{lineno}") for lineno, raw in enumerate(f, 1)]


def read_jsonl(path: Path) -> list[tuple[int, str, float]]:
    return [(step, name, value) for step, metrics in read_log_events(path) for name, value in metrics.items()]


def write_parquet(rows: list[tuple[int, str, float]], path: Path) -> None:
    table = pa.Table.from_arrays(
        [
            pa.array([r[0] for r in rows], pa.int64()),
            pa.array([r[1] for r in rows], pa.string()),
            pa.array([r[2] for r in rows], pa.float64()),
        ],
        schema=SCHEMA,
    )
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def finite(values: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())


def _git_sha() -> str:
    if os.environ.get("NEUROPLASTIC_GIT_SHA"):
        return os.environ["NEUROPLASTIC_GIT_SHA"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _env_versions() -> dict[str, str]:
    out = {}
    for pkg in ("gymnasium", "mujoco", "dm_control"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def manifest(extra: dict[str, Any]) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "neuroplastic": __version__,
        "git_sha": _git_sha(),
        "container_digest": os.environ.get("NEUROPLASTIC_CONTAINER_DIGEST", "none"),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "cuda": torch.version.cuda or "none",
            **_env_versions(),
        },
        "hardware": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if cuda else "none",
        },
        **extra,
    }
