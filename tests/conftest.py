from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

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
