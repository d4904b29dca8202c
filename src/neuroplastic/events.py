"""TensorBoard event files: a run's `metrics.jsonl`, mirrored for `tensorboard --logdir`.

Every log event of `metrics.jsonl` (`{"step": s, "metrics": {name: value}}`) becomes one scalar per metric in an
`events.out.tfevents.*` file in the run directory, same names, same steps, written at the same log points (never
in the update step). Values are TensorBoard scalars (float32), the standard `simple_value` that `SummaryWriter`
writes, so every TensorBoard-reading tool sees them.

Resume: `metrics.jsonl` is cut back to the byte offset of the newest checkpoint, so the events written after that
checkpoint must go too. A run directory therefore never appends to an old event file: when a run (re)starts, a
fresh event file is written from the kept `metrics.jsonl` prefix, the old files are deleted, and the run appends
to the fresh one. The raw files then hold each (step, metric) exactly once, for every reader (TensorBoard's
orphan purge, which handles this case only in its own UI, is not needed). Wall times of the kept events are
carried over from the old files, so TensorBoard's "relative time" axis survives a resume. Events the killed
process had not yet flushed come back from `metrics.jsonl`, stamped with the restart time.

`link_tree` makes the grid readable in TensorBoard: `<out>/<experiment>/<variant>/<env>/seed<k>` symlinks to
`results/runs/<run_id>` (a run shared by two experiments appears in both). Point TensorBoard at the whole tree or
at one experiment: `tensorboard --logdir results/tensorboard/<config name>/<experiment>`.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

EVENTS_GLOB = "events.out.tfevents.*"


def event_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob(EVENTS_GLOB))


def _scalar_event(step: int, metrics: dict[str, float], wall_time: float) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    values = [summary_pb2.Summary.Value(tag=name, simple_value=float(v)) for name, v in metrics.items()]
    event = event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=values))
    return event.SerializeToString()


def _wall_times(files: list[Path]) -> dict[tuple[int, str], float]:
    """(step, tag) → wall time of the events in `files`; a record cut short by a kill ends its file quietly."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    wall: dict[tuple[int, str], float] = {}
    for path in files:
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                wall.setdefault((event.step, value.tag), event.wall_time)
    return wall


class EventLog:
    """Appends one TensorBoard scalar event per log point to a fresh event file in `run_dir`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._writer: Any = None

    def open(self, kept: list[tuple[int, dict[str, float]]]) -> None:
        """Start a fresh event file holding exactly `kept` (the log events of `metrics.jsonl` that survive)."""
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        old = event_files(self.run_dir)
        wall = _wall_times(old) if old and kept else {}
        now = time.time()
        name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.{time.monotonic_ns()}"
        self._writer = RecordWriter(open(self.run_dir / name, "wb"))  # noqa: SIM115 - kept open for the run
        header = event_pb2.Event(wall_time=now, file_version="brain.Event:2")
        self._writer.write(header.SerializeToString())
        for step, metrics in kept:
            # An event's wall time is its first metric's; a log event is written as one record.
            t = wall.get((step, next(iter(metrics))), now) if metrics else now
            self._writer.write(_scalar_event(step, metrics, t))
        self._writer.flush()
        for path in old:
            path.unlink(missing_ok=True)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        self._writer.write(_scalar_event(step, metrics, time.time()))
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run's event files, read back with TensorBoard's own reader: tag → [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


# ---------------------------------------------------------------------------------------------------------------
# readable names for the grid


def _path_part(text: str) -> str:
    """A label as one path component: `/` cannot appear in it, and a leading dot would hide it."""
    part = str(text).replace(os.sep, "∕").strip()
    return "_" + part if part.startswith(".") or not part else part


def link_tree(plan: Any, runs_dir: Path, out: Path) -> int:
    """Write `<out>/<experiment>/<variant>/<env>/seed<k>` → `<runs_dir>/<run_id>` links for every plan member.

    Links are relative, so they point at a run before it starts and keep working when `results/` moves. Links of
    runs no longer in the plan are removed. Returns the number of links.
    """
    out, runs_dir = Path(out), Path(runs_dir)
    wanted: dict[Path, str] = {}
    for m in plan.members:
        link = out / _path_part(m.experiment) / _path_part(m.variant) / _path_part(m.env) / f"seed{m.seed}"
        wanted[link] = m.run_id
    # os.walk does not descend into the links (followlinks=False): only the tree itself is scanned.
    for folder, subdirs, files in os.walk(out) if out.is_dir() else []:
        for name in subdirs + files:
            link = Path(folder) / name
            if link.is_symlink() and link not in wanted:
                link.unlink()
    for link, rid in wanted.items():
        target = os.path.relpath(runs_dir / rid, link.parent)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    for folder, _, _ in sorted(os.walk(out), reverse=True):
        if Path(folder) != out and not any(Path(folder).iterdir()):
            Path(folder).rmdir()
    return len(wanted)
