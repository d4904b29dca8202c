"""Atomic checkpoints with completion sentinels (the Dopamine pattern), keeping the newest `keep`.

`step_<N>.pt` is written to a temporary name, fsynced and renamed; only then is `step_<N>.complete` created, holding
the file's size and CRC-32 (torch does not check what it loads: a damaged byte in a tensor loads silently). A
checkpoint without its sentinel (the process died between the two) is ignored and cleaned up. A checkpoint whose
bytes no longer match its sentinel (cut short or damaged on disk after it was written), or that cannot be read, is
set aside as `step_<N>.pt.corrupt` with a warning naming it, and the next older complete checkpoint is tried; with
none left, the run starts clean. A failed write (a full disk) removes its temporary file and leaves the older
checkpoints as they were.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zlib
from pathlib import Path
from typing import Any

import torch

from neuroplastic.runlog import atomic_stream

_NAME = re.compile(r"^step_(\d+)\.pt$")
_CHUNK = 1 << 24


class CorruptCheckpointError(RuntimeError):
    """A checkpoint that cannot be trusted; the message names the file and why."""


class _HashingWriter:
    """A write-only file that checksums what passes through, so a checkpoint is sealed without reading it back."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.crc = 0
        self.size = 0
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(memoryview(data).cast("B"))
        try:
            return self.f.write(data)
        except OSError as err:
            # Kept: torch's zip writer, closing after the failed write, raises its own RuntimeError over this one.
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def _file_crc(path: Path) -> tuple[int, int]:
    """Size and CRC-32 of a file. CRC-32, not a cryptographic hash: it is to catch damage, not tampering, and a
    multi-GB checkpoint is checked at about twice SHA-256's speed here."""
    crc = size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, crc


class Checkpointer:
    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.dir = Path(directory)
        self.keep = keep

    def path(self, step: int) -> Path:
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
        """Write the checkpoint of `step`. Raises runlog.DiskWriteError (naming the file) when it cannot be
        written; the older checkpoints are then untouched."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.path(step)
        with atomic_stream(path, what="checkpoint") as f:
            writer = _HashingWriter(f)
            try:
                torch.save(state, writer)
            except RuntimeError:
                if writer.error is not None:
                    raise writer.error from None
                raise
        seal = {"bytes": writer.size, "crc32": writer.crc}
        # A sentinel is a few bytes, but on a full disk even those can fail; the checkpoint is then one without
        # a sentinel, which the next save or resume removes.
        with atomic_stream(self._sentinel(step), what="checkpoint sentinel") as f:
            f.write((json.dumps(seal) + "\n").encode())
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
            self.path(old).unlink(missing_ok=True)
        for p in self.dir.iterdir():
            # Leftovers of a save that died before its sentinel.
            m = _NAME.match(p.name)
            if p.name.endswith(".pt.tmp") or (m and int(m.group(1)) not in steps):
                p.unlink(missing_ok=True)

    def verify(self, step: int) -> None:
        """Raise CorruptCheckpointError if `step`'s file differs from what its sentinel recorded at save time.
        Sentinels written before they held a seal are empty; such checkpoints are checked only by loading them."""
        path = self.path(step)
        text = self._sentinel(step).read_text().strip()
        if not text:
            return
        try:
            seal = json.loads(text)
            want_size, want_crc = int(seal["bytes"]), int(seal["crc32"])
        except (ValueError, KeyError, TypeError):
            raise CorruptCheckpointError(f"{self._sentinel(step)}: unreadable sentinel {text[:80]!r}") from None
        size, crc = _file_crc(path)
        if size != want_size:
            raise CorruptCheckpointError(f"{path}: {size} bytes on disk, {want_size} written (cut short?)")
        if crc != want_crc:
            raise CorruptCheckpointError(f"{path}: its CRC-32 differs from the one recorded when it was written")

    def load(self, step: int) -> dict[str, Any]:
        """The state saved at `step`, after checking it against its sentinel."""
        self.verify(step)
        path = self.path(step)
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
            raise CorruptCheckpointError(f"{path}: cannot be loaded ({type(err).__name__}: {err})") from None

    def set_aside(self, step: int) -> Path:
        """Keep a bad checkpoint for inspection under a name nothing resumes from (`clear` removes it)."""
        path = self.path(step)
        corrupt = path.with_name(path.name + ".corrupt")
        os.replace(path, corrupt)
        self._sentinel(step).unlink(missing_ok=True)
        return corrupt

    def latest(self) -> tuple[int, dict[str, Any]] | None:
        """The newest checkpoint that verifies and loads. Each one that does not is set aside with a warning that
        names it, and the next older one is tried; None when none is left (the run starts clean)."""
        for step in reversed(self.complete_steps()):
            try:
                return step, self.load(step)
            except CorruptCheckpointError as err:
                moved = self.set_aside(step)
                older = [s for s in self.complete_steps() if s < step]
                fallback = f"trying the checkpoint of step {older[-1]}" if older else "starting the run from scratch"
                print(f"warning: corrupt checkpoint {err}; moved to {moved.name}, {fallback}", file=sys.stderr)
        return None

    def clear(self) -> None:
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                if p.name.startswith("step_"):
                    p.unlink(missing_ok=True)
