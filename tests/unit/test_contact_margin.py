"""`env_options: {contact_margin: max}`: MuJoCo ≤ 3.4 contact margins on MuJoCo ≥ 3.5. A fixed-seed open-loop
Hopper-v4 rollout then matches MuJoCo 2.3.7's stored observations (tests/unit/data/README.md); without the switch it
leaves them at the first foot-floor contact."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from neuroplastic import config, envs, runs

MUJOCO_237 = Path(__file__).parent / "data" / "hopper_v4_openloop_mujoco237.csv"
FIRST_CONTACT = 9  # the first step at which MuJoCo 2.3.7 and ≥ 3.5 disagree (the foot reaches the floor)

needs_summed_margins = pytest.mark.skipif(
    envs.mujoco_version() < envs.MARGIN_SUM_SINCE, reason="this MuJoCo takes the larger margin already"
)


def openloop(options: dict | None) -> np.ndarray:
    """Observations t = 0..100 of the stored action sequence, as recorded (the unwrapped env ignores termination)."""
    env = envs.make_env("Hopper-v4", 0, options)
    obs, _ = env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (1000, 3)).astype(np.float32)
    rows = [obs]
    for action in actions[:100]:
        rows.append(env.unwrapped.step(action)[0])
    env.close()
    return np.asarray(rows, dtype=np.float64)


def stored() -> np.ndarray:
    table = pd.read_csv(MUJOCO_237)
    assert table["t"].tolist() == list(range(101))
    return table[[f"obs{i}" for i in range(11)]].to_numpy(dtype=np.float64)


@needs_summed_margins
def test_max_contact_margins_reproduce_mujoco_237_for_100_steps():
    diff = np.abs(openloop({"contact_margin": "max"}) - stored())
    assert diff.max() < 1e-6, diff.max(axis=1)


@needs_summed_margins
def test_default_margins_leave_mujoco_237_at_the_first_contact():
    diff = np.abs(openloop(None) - stored()).max(axis=1)
    assert diff[:FIRST_CONTACT].max() < 1e-9  # no contact yet: the same physics
    assert (diff[FIRST_CONTACT:] > 1e-3).all(), diff


def test_switch_halves_equal_margins_only_on_mujoco_35_and_later():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = gym.make("Ant-v4").unwrapped.model
    envs.use_max_contact_margins(model, version=(3, 4, 0))
    assert np.unique(model.geom_margin).tolist() == [0.01]
    envs.use_max_contact_margins(model, version=(3, 17, 0))
    assert np.unique(model.geom_margin).tolist() == [0.005]
    model.geom_margin[0] = 0.02
    with pytest.raises(ValueError, match=r"contact_margin: 'max' needs one margin for every geom"):
        envs.use_max_contact_margins(model, version=(3, 5, 0))


def test_eval_env_gets_the_switch_too():
    run = runs.resolve({"agent": "td3", "env": "Hopper-v4", "steps": 10, "env_options": {"contact_margin": "max"}})
    training = runs.make_training_env(run)
    expected = 0.0005 if envs.mujoco_version() >= envs.MARGIN_SUM_SINCE else 0.001
    assert np.unique(training.unwrapped.model.geom_margin).tolist() == [expected]
    # eval_row builds its env from the same options: an eval env of the run has the same margins.
    evaluated = envs.make_env(training.env_id, 100, training.options)
    assert np.unique(evaluated.unwrapped.model.geom_margin).tolist() == [expected]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"contact_margin": "min"}, "env_options.contact_margin: must be one of 'max' (or left out), got 'min'"),
        ({"contact_margin": True}, "env_options.contact_margin: must be one of 'max'"),
        ({"margin": "max"}, "env_options.margin: unknown key for MuJoCo env 'Hopper-v4' (known: contact_margin)"),
    ],
)
def test_bad_contact_margin_options_name_the_key(options, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        runs.resolve({"agent": "td3", "env": "Hopper-v4", "steps": 10, "env_options": options})


def test_default_run_ids_do_not_change():
    plain = runs.resolve({"agent": "td3", "env": "Hopper-v4", "steps": 10})
    assert "env_options" not in config.canonical_json(plain)
    switched = runs.resolve({"agent": "td3", "env": "Hopper-v4", "steps": 10, "env_options": {"contact_margin": "max"}})
    assert config.run_id(switched) != config.run_id(plain)
    with pytest.raises(config.ConfigError, match="not accepted by env 'CartPole-v1'"):
        runs.resolve({"agent": "dqn", "env": "CartPole-v1", "steps": 10, "env_options": {"contact_margin": "max"}})
