"""A training process keeps freed memory for reuse (neuroplastic.allocator), and does nothing off glibc."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from neuroplastic import allocator

SRC = Path(__file__).resolve().parents[2] / "src"

# Runs `neuroplastic <argv>` in a fresh process with the training itself replaced by a probe of the allocator
# settings in effect where the run would start.
PROBE = """
import json, sys
from neuroplastic import allocator, cli

def probe(*args, **kwargs):
    print(json.dumps({"mmapped": allocator.large_block_is_mmapped()}))
    return 0

cli._train_one = probe
sys.exit(cli.main(sys.argv[1:]))
"""

needs_glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the settings are glibc's"
)


def _spawn(argv: list[str], tmp_path: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for var in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@needs_glibc
def test_a_spawned_training_process_keeps_large_blocks_off_mmap(tmp_path):
    # The probe itself tells the settings apart: glibc's defaults mmap a 64 MB block.
    bare = subprocess.run(
        [sys.executable, "-c", "from neuroplastic import allocator; print(allocator.large_block_is_mmapped())"],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert bare.stdout.strip() == "True"
    assert _spawn(["train", "run.json", "--out", "run", "--quiet"], tmp_path) == [{"mmapped": False}]
    assert _spawn(["resume", "run.json", "--out", "run", "--quiet"], tmp_path) == [{"mmapped": False}]
    batch = ["train-batch", "a", "b", "--configs", ".", "--runs", "runs", "--logs", "logs", "--quiet"]
    _spawn(batch, tmp_path)  # each run's output goes to its log
    logs = [json.loads((tmp_path / "logs" / f"{rid}.log").read_text()) for rid in ("a", "b")]
    assert logs == [{"mmapped": False}, {"mmapped": False}]


def test_off_glibc_nothing_is_applied_and_the_reason_is_given(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("musl", "1.2"))
    called = []
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a, **k: called.append(a))
    setting = allocator.keep_freed_memory()
    assert not setting.applied
    assert "not glibc" in setting.reason and "musl" in setting.reason
    assert called == []  # no C library was even loaded
    assert allocator.large_block_is_mmapped() is None
