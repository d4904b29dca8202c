"""The run directory contract: `config.json`, `metrics.jsonl` → `metrics.parquet`, `manifest.json`, `done`.

`metrics.jsonl` holds one JSON object per log event, `{"step": s, "metrics": {name: value}}`, appended and
flushed as training goes, so a crash loses at most the line being written. On resume the file is cut back to
the byte offset recorded in the checkpoint. At the end it becomes `metrics.parquet` in long format
(`step`, `metric`, `value`). `done` is written last, by atomic rename: it is the only file other jobs trust.
Beside them, unless turned off: TensorBoard event files holding the same log events (see events.py), and
`attempt.json`, where the current training attempt started (`{"step", "time", "host", "pid"}`), from which
`neuroplastic status` measures a running run's speed and tells a live process from a killed one; and `train.lock`,
which the training process holds (see locks.py) so that no second process trains the same run at the same time.

A write that fails (a full disk, a quota, an I/O error) raises DiskWriteError naming the file, and leaves what was
on disk before it: files are replaced by atomic rename (a failed write removes its temporary file), and a
`metrics.jsonl` line that could be written only in part is cut off again. A rerun with space resumes.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata as md
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from neuroplastic import __version__
from neuroplastic.events import EventLog

METRICS_JSONL = "metrics.jsonl"
METRICS_PARQUET = "metrics.parquet"
CONFIG_JSON = "config.json"
MANIFEST_JSON = "manifest.json"
ATTEMPT_JSON = "attempt.json"
TRAIN_LOCK = "train.lock"
DONE = "done"

SCHEMA = pa.schema([("step", pa.int64()), ("metric", pa.string()), ("value", pa.float64())])


class DiskWriteError(RuntimeError):
    """A run's file could not be written (disk full, quota, I/O error). The message names the file; what was on
    disk before the write is intact."""


def disk_write_error(path: Path, what: str, err: OSError) -> DiskWriteError:
    hint = "; free some space and run again: the run resumes" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return DiskWriteError(f"could not write {what} {path}: {err.strerror or err}{hint}")


@contextlib.contextmanager
def atomic_stream(path: Path, what: str = "file") -> Iterator[IO[bytes]]:
    """A file to write `path` into: written under a temporary name, fsynced, then renamed over `path`. A failed
    write removes the temporary file (a full disk gets its space back) and raises DiskWriteError."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise disk_write_error(path, what, err) from err


def atomic_write(path: Path, data: bytes) -> None:
    with atomic_stream(path) as f:
        f.write(data)


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
        # Unbuffered: each log event is one write call, so a failed one can be cut off again exactly.
        self._f = open(self.path, mode, buffering=0)  # noqa: SIM115 - kept open for the whole run
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
        data = memoryview(line.encode() + b"\n")
        start = self._f.tell()
        try:
            while data:
                # A raw write may write part of the line (a disk filling up) and fail on the rest.
                data = data[self._f.write(data) :]
        except OSError as err:
            with contextlib.suppress(OSError):
                self._f.truncate(start)
                self._f.seek(start)
            raise disk_write_error(self.path, "the metrics log", err) from err
        if self._events is not None:
            try:
                self._events.write(step, metrics)
            except OSError as err:
                # The event files are rebuilt from metrics.jsonl when the run resumes.
                raise disk_write_error(self.path.parent, "the TensorBoard event file in", err) from err

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        if self._events is not None:
            # After a failed write the writer still holds what it could not flush; the event files are rebuilt
            # from metrics.jsonl when the run resumes, so that loss is no loss.
            with contextlib.suppress(OSError):
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
    with atomic_stream(path, what="metrics table") as f:
        pq.write_table(table, f)


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
