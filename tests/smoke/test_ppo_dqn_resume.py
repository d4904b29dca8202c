"""PPO and DQN resume bit-identically after kill -9 (one test per agent), with a dynamic sparse method acting."""

from __future__ import annotations

import pytest

from tests.conftest import assert_kill_9_resume_is_bit_identical

pytestmark = pytest.mark.smoke

PPO_CFG = {
    "agent": {"name": "ppo", "hidden": 32, "rollout_length": 128, "batch_size": 32, "epochs": 2},
    "env": "Hopper-v4",
    "seed": 0,
    # Long enough after the first checkpoint that a fast (idle) machine cannot finish before the kill.
    "steps": 6144,
    "start_steps": 0,
    "eval_every": 2048,
    "eval_episodes": 1,
    "log_every": 256,
    "checkpoint_every": 448,  # mid-rollout (3.5 rollouts): the rollout store, normalisers and iteration are restored
    "method": [{"name": "rigl", "sparsity": 0.8, "delta": 10, "weight_decay": 0.0}],
}
DQN_CFG = {
    "agent": {"name": "dqn", "hidden": 32, "batch_size": 32, "target_update_period": 50},
    "env": "CartPole-v1",
    "seed": 0,
    "steps": 1600,
    "start_steps": 200,
    "eval_every": 500,
    "eval_episodes": 2,
    "log_every": 250,
    "checkpoint_every": 400,
    "method": [{"name": "set", "sparsity": 0.8, "delta": 100, "nets": "critic"}],
}


@pytest.mark.parametrize("cfg", [PPO_CFG, DQN_CFG], ids=["ppo", "dqn"])
def test_kill_9_then_rerun_is_bit_identical(tmp_path, cfg):
    assert_kill_9_resume_is_bit_identical(tmp_path, cfg)
