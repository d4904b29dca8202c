"""Atomic checkpoints with completion sentinels (the Dopamine pattern), keeping the newest `keep`.

`step_<N>.pt` is written to a temporary name, fsynced and renamed; only then is `step_<N>.complete` created.
A checkpoint without its sentinel (the process died between the two) is ignored and cleaned up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^step_(\d+)\.pt$")


class Checkpointer:
    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.dir = Path(directory)
        self.keep = keep

    def _path(self, step: int) -> Path:
        return self.dir / f"step_{step:012d}.pt"

    def _sentinel(self, step: int) -> Path:
        return self.dir / f"step_{step:012d}.complete"

    def complete_steps(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        steps = []
        for p in self.dir.iterdir():
            m = _NAME.match(p.name)
            if m and self._sentinel(int(m.group(1))).exists():
                steps.append(int(m.group(1)))
        return sorted(steps)

    def save(self, step: int, state: dict[str, Any]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(step)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._sentinel(step).touch()
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._prune()
        return path

    def _prune(self) -> None:
        steps = self.complete_steps()
        for old in steps[: max(0, len(steps) - self.keep)]:
            self._sentinel(old).unlink(missing_ok=True)
            self._path(old).unlink(missing_ok=True)
        for p in self.dir.iterdir():
            # Leftovers of a save that died before its sentinel.
            m = _NAME.match(p.name)
            if p.name.endswith(".pt.tmp") or (m and int(m.group(1)) not in steps):
                p.unlink(missing_ok=True)

    def latest(self) -> tuple[int, dict[str, Any]] | None:
        steps = self.complete_steps()
        if not steps:
            return None
        step = steps[-1]
        state = torch.load(self._path(step), map_location="cpu", weights_only=False)
        return step, state

    def clear(self) -> None:
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                if p.name.startswith("step_"):
                    p.unlink(missing_ok=True)
