"""One thread budget for every native thread pool of a training process.

`torch.set_num_threads` bounds torch only. numpy's bundled OpenBLAS keeps its own pool, sized to the machine, and its
workers spin after every BLAS call: the Atari preprocessing's per-frame area resize is two small matrix products, so a
1-thread DQN run on Atari burned a second core (process CPU time twice its wall time, measured). A job that declares
k threads to a scheduler must use k cores, so the run's thread budget applies to these pools too.
"""

from __future__ import annotations

import numpy  # noqa: F401  (loads OpenBLAS, so that threadpool_limits limits its pool too)
from threadpoolctl import threadpool_limits


def limit_threads(threads: int) -> None:
    """Use at most `threads` threads in torch and in every BLAS/OpenMP library loaded in this process."""
    import torch

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
