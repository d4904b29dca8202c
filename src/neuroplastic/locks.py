"""Exclusive locks on a results directory and on a run, so that two processes never write the same files.

A lock is an `flock` on a small file that holds who took it (pid, host, time, command). The kernel drops it when
its process ends, however it ends (kill -9, a lost node's NFS lease), so a lock is never left stale. A file system
that does not support `flock` (some parallel file systems mount without it) gets a warning and no lock.

Two holders are guarded against:
  * the Snakemake DAG: `results/dag.lock`, held by the main Snakemake process for as long as it runs
    (workflow/rules/common.smk). Snakemake's own lock lives in the working directory's `.snakemake/` and only
    refuses a second DAG whose files overlap; two working directories that share one `results/` (a symlink, a
    shared scratch path), or `--nolock`, are not covered by it;
  * a training process: `results/runs/<id>/train.lock` (loop.train), which also covers a hand-started
    `neuroplastic train` beside the DAG, and a scheduler that starts a retry while the first attempt still runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path


class LockHeldError(RuntimeError):
    """Someone else holds the lock; the message says who and what to do."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["time"]))
        return f"pid {info['pid']} on host {info['host']} since {started} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def acquire(path: Path, what: str, advice: str) -> int | None:
    """Take the lock `path` for this process and return its file descriptor (closing it releases the lock), or
    None where the file system has no locks. Raises LockHeldError naming the holder, `what` is locked and
    `advice` (what to do) when another process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LockHeldError(f"{what} is in use by {_holder(path)}: {advice} (lock file {path.resolve()})") from None
        print(f"warning: {path}: no file locks here ({err.strerror}); {what} is unprotected", file=sys.stderr)
        return None
    info = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), "command": " ".join(sys.argv)}
    with contextlib.suppress(OSError):  # who holds it is only for the message; the lock holds without it
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return fd


@contextlib.contextmanager
def held(path: Path, what: str, advice: str) -> Iterator[None]:
    """`acquire` for the duration of a block."""
    fd = acquire(path, what, advice)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)
