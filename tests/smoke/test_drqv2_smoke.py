"""DrQ-v2 on pixel DMC: trains with every method that applies, and resumes bit-identically after kill -9.

Pixels render at ~20-35 frames/s on a CPU, so these runs are small: 32×32 images (env_options.size), 20-step
episodes (episode_frames 40 at action repeat 2), narrow heads and small batches. The agent code path is the
one of the full-size agent.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from neuroplastic import loop, runs
from neuroplastic.methods import METHODS
from tests.conftest import assert_kill_9_resume_is_bit_identical

pytestmark = pytest.mark.smoke

STEPS, START = 200, 100


def pixel_config(**overrides) -> dict:
    cfg = {
        "agent": {"name": "drqv2", "batch_size": 16, "hidden": 64, "feature_dim": 16, "std_steps": 1000},
        "env": "dmc-pixels:cartpole-swingup",
        "env_options": {"size": 32, "episode_frames": 40},
        "seed": 0,
        "steps": STEPS,
        "start_steps": START,
        "eval_every": STEPS // 2,
        "eval_episodes": 1,
        "log_every": 50,
        "metrics_batch": 32,
        "checkpoint_every": 0,
    }
    cfg.update(overrides)
    return cfg


# Params that make each method act within this 200-step run (50 updates at RR 0.5); methods not listed use
# their own `smoke_params`. Plasticity injection runs twice (actor head, critic head), as in Ma et al.
PIXEL_SMOKE_PARAMS = {
    "reset": {"interval": 150, "nets": ["actor", "critic"], "last_layers": 3},
    "redo": {"interval": 15},
    "plasticity_injection": {"at_step": 150, "encoder_layers": 0, "nets": "critic"},
    "plasticity_injection[actor]": {"at_step": 150, "encoder_layers": 0, "nets": "actor"},
    "shrink_perturb": {"interval": 150},
    "data_augmentation": {"enabled": False, "from_step": 150},
    "adaptive_rr": {"check_every": 2, "threshold": 1.0},
    "ne": {"growth": {"delta": 20}, "review": {"every": 20}},
}

# NE's presets (ne_code, ne_no_review, ...) share NE's code path on DrQ-v2; `ne` stands for them here.
DRQ_METHODS = sorted(
    m for m, cls in METHODS.items() if not m.startswith(("_", "ne_")) and (cls.agents is None or "drqv2" in cls.agents)
)
CASES = ["none", *DRQ_METHODS, "plasticity_injection[actor]"]


@pytest.mark.parametrize("case", CASES)
def test_drqv2_trains_with_method(tmp_path, case):
    method = case.split("[")[0]
    params = PIXEL_SMOKE_PARAMS.get(case, METHODS[method].smoke_params if method != "none" else {})
    entry = [] if method == "none" else [{"name": method, **params}]
    cfg = runs.resolve(pixel_config(method=entry))
    loop.train(cfg, tmp_path / "run", progress=False)
    df = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert all(math.isfinite(v) for v in df.value), df[~df.value.map(math.isfinite)]
    assert df[df.metric == "eval_return"].step.tolist() == [STEPS // 2, STEPS]
    wide = df.pivot(index="step", columns="metric", values="value")
    for module in ("encoder", "actor", "critic"):
        fau = wide[f"fau.{module}"]
        assert ((fau > 0) & (fau <= 1)).all()
    rr = wide["replay_ratio"]
    if method == "adaptive_rr":
        # 0.5 until the first check (end of episode 2 = step 40 ... first check with updates), then 2
        switch = wide["adaptive_rr.switch_step"].dropna().iloc[0]
        assert START < switch < STEPS and rr.iloc[0] == 0.5 and rr.iloc[-1] == 2.0
        owed = (switch - START) * 0.5 + (STEPS - switch) * 2.0
        assert abs(wide["updates"].max() - owed) <= 2
    else:
        assert (rr == 0.5).all()
        assert wide["updates"].max() == (STEPS - START) / 2
    if method == "data_augmentation":
        assert wide["da.enabled"].loc[STEPS // 2] == 1.0 and wide["da.enabled"].loc[STEPS] == 0.0
    if method == "redo":
        assert wide["redo.recycles"].iloc[-1] >= 3 and "redo.recycled_fraction.encoder" in wide
    if method == "ne":
        assert "density.critic" in wide and "density.encoder" not in wide  # encoder and trunks stay dense


def test_drqv2_kill_9_then_rerun_is_bit_identical(tmp_path):
    cfg = pixel_config(checkpoint_every=100, method=[{"name": "adaptive_rr", "check_every": 2, "threshold": 1.0}])
    assert_kill_9_resume_is_bit_identical(tmp_path, cfg)
