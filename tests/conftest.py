from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
# One torch thread per test process: CI has 2 cores, and oversubscribed BLAS threads slow tiny matmuls ~50×
# when other processes (subprocess runs, the DAG) share the cores. Subprocesses inherit these.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NEUROPLASTIC_THREADS", "1")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**overrides) -> dict:
    cfg = {
        "agent": "td3",
        "env": "Hopper-v4",
        "seed": 0,
        "steps": 600,
        "start_steps": 200,
        "eval_every": 300,
        "eval_episodes": 1,
        "log_every": 200,
        "checkpoint_every": 0,
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def repo() -> Path:
    return REPO
