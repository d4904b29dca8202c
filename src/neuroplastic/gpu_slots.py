"""Pin a training process to one GPU of a workstation that several runs share.

Snakemake's local scheduler bounds how many training jobs run at once (the `gpu_slots` resource, see
workflow/rules/common.smk) but does not say which GPU a job should use. Each job therefore claims one itself,
before CUDA is initialised: under an exclusive lock on `<slot_dir>/lock` it sums the weights of the live holders
of every visible GPU, takes the least loaded GPU (lowest index on ties) and sets `CUDA_VISIBLE_DEVICES` to it.
A holder is a file `<slot_dir>/gpu<i>/<host>-<pid>-<n>` that its process keeps locked (flock) for as long as it
lives; the kernel drops the lock when the process dies, even by kill -9, so a file that can be locked belongs
to a dead run and is removed. Locks, unlike pids, also work across container PID namespaces on one host.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_counter = itertools.count()
# The claim of `pin_process`: referenced here so that its locked file stays open for the life of the process.
_process_claim: GpuClaim | None = None


class GpuSlotError(RuntimeError):
    pass


@dataclass
class GpuClaim:
    index: int  # position among the visible GPUs
    device: str  # the value written to CUDA_VISIBLE_DEVICES
    holder: Path
    _handle: IO[str] | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._handle is not None:
            self.holder.unlink(missing_ok=True)
            self._handle.close()
            self._handle = None


def visible_devices(gpus: int, environ: dict[str, str] | None = None) -> list[str]:
    """The GPU ids to choose from: the first `gpus` of an existing CUDA_VISIBLE_DEVICES, else 0..gpus-1."""
    if gpus < 1:
        raise GpuSlotError(f"--gpus must be at least 1, got {gpus}")
    env = os.environ if environ is None else environ
    current = env.get("CUDA_VISIBLE_DEVICES")
    if current is None or current.strip() == "":
        return [str(i) for i in range(gpus)]
    ids = [d.strip() for d in current.split(",") if d.strip()]
    if len(ids) < gpus:
        raise GpuSlotError(f"--gpus {gpus} but CUDA_VISIBLE_DEVICES={current!r} names only {len(ids)}")
    return ids[:gpus]


def _load(gpu_dir: Path) -> int:
    """Sum of the weights of live holders; files whose process died are removed."""
    total = 0
    for holder in sorted(gpu_dir.iterdir()):
        with open(holder, "r+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = f.read().strip()
                total += int(text) if text.isdigit() else 1
                continue
        holder.unlink(missing_ok=True)
    return total


def claim(slot_dir: Path, gpus: int, weight: int = 1) -> GpuClaim:
    """Claim the least loaded of `gpus` GPUs; the claim lasts until `release()` or the end of this process."""
    if weight < 1:
        raise GpuSlotError(f"--gpu-weight must be at least 1, got {weight}")
    slot_dir = Path(slot_dir)
    slot_dir.mkdir(parents=True, exist_ok=True)
    devices = visible_devices(gpus)
    with open(slot_dir / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        loads = []
        for i in range(len(devices)):
            gpu_dir = slot_dir / f"gpu{i}"
            gpu_dir.mkdir(exist_ok=True)
            loads.append(_load(gpu_dir))
        index = min(range(len(devices)), key=lambda i: (loads[i], i))
        holder = slot_dir / f"gpu{index}" / f"{socket.gethostname()}-{os.getpid()}-{next(_counter)}"
        handle = open(holder, "w")  # noqa: SIM115 - held open (and locked) for the life of the claim
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(str(weight))
        handle.flush()
    return GpuClaim(index, devices[index], holder, handle)


def pin_process(slot_dir: Path, gpus: int, weight: int = 1) -> GpuClaim:
    """Claim a GPU for this process and make it the only visible one (held until the process exits)."""
    global _process_claim
    if _process_claim is not None:
        raise GpuSlotError(f"this process already holds GPU {_process_claim.device}")
    _process_claim = claim(slot_dir, gpus, weight)
    os.environ["CUDA_VISIBLE_DEVICES"] = _process_claim.device
    return _process_claim
