"""The `td3_paper` preset: the protocol of the TD3 authors' curves, resolved into plain keys (the same run id as
the settings written out); it fills only what a config leaves unset, and in a workflow config it takes the place
of the top-level `run:` defaults it sets."""

from __future__ import annotations

import copy

import pytest
import torch

from neuroplastic import config, experiments, loop, runs

PAPER_AGENT = {"name": "td3", "critic": "td3", "hidden": [400, 300], "lr": 1e-3, "batch_size": 100}


@pytest.mark.parametrize(
    ("env", "start"), [("Hopper-v4", 1000), ("Walker2d-v4", 1000), ("HalfCheetah-v4", 10000), ("Ant-v5", 10000)]
)
def test_td3_paper_preset_is_the_curves_protocol_written_out(env, start):
    preset = runs.resolve({"preset": "td3_paper", "env": env, "steps": 20000})
    spelled = runs.resolve(
        {"agent": PAPER_AGENT, "env": env, "steps": 20000, "start_steps": start, "update_schedule": "episode_end"}
    )
    assert config.canonical_json(preset) == config.canonical_json(spelled)
    assert (preset.start_steps, preset.update_schedule, preset.agent["hidden"]) == (start, "episode_end", [400, 300])
    assert (preset.agent["lr"], preset.agent["batch_size"], preset.agent["critic"]) == (1e-3, 100, "td3")
    assert '"preset"' not in config.canonical_json(preset)


def test_preset_networks_are_400_300():
    cfg = runs.resolve({"preset": "td3_paper", "env": "Hopper-v4", "steps": 10})
    run = loop.build(cfg, torch.device("cpu"))
    actor = [m.out_features for m in run.agent.nets["actor"].modules() if isinstance(m, torch.nn.Linear)]
    assert actor == [400, 300, 3]
    critic = [m.out_features for m in run.agent.nets["critic"].modules() if isinstance(m, torch.nn.Linear)]
    assert critic == [400, 300, 1, 400, 300, 1]  # twin heads


def test_explicit_keys_win_over_the_preset():
    cfg = runs.resolve(
        {"preset": "td3_paper", "agent": {"hidden": 64}, "env": "Humanoid-v4", "steps": 10, "start_steps": 5}
    )
    assert (cfg.agent["hidden"], cfg.agent["lr"], cfg.start_steps, cfg.update_schedule) == (64, 1e-3, 5, "episode_end")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"preset": "td3_fast", "env": "Hopper-v4"}, "preset: unknown preset 'td3_fast' (known: td3_paper)"),
        ({"preset": "td3_paper", "agent": "sac", "env": "Hopper-v4"}, "preset of agent 'td3', not 'sac'"),
        ({"preset": "td3_paper", "env": "Humanoid-v4"}, "env 'Humanoid-v4' needs start_steps"),
    ],
)
def test_preset_problems_name_the_key(data, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        runs.resolve({"steps": 10, **data})


def test_workflow_preset_replaces_the_top_level_run_defaults_it_sets():
    cfg = {
        "name": "t",
        "run": {"agent": {"name": "td3", "critic": "ne", "hidden": 64}, "steps": 2000, "start_steps": 25000},
        "experiments": {
            "paper_td3": {
                "envs": ["Hopper-v4", "HalfCheetah-v4"],
                "seeds": 1,
                "run": {"preset": "td3_paper"},
                "variants": [{"label": "TD3"}, {"label": "TD3 small", "run": {"agent": {"hidden": 32}}}],
            },
            "plain": {"envs": ["Hopper-v4"], "seeds": 1, "run": {"start_steps": 100}, "variants": [{"label": "TD3"}]},
        },
        "figures": {},
    }
    plan = experiments.plan_from_dict(copy.deepcopy(cfg))
    by = {(m.experiment, m.variant, m.env): plan.runs[m.run_id] for m in plan.members}
    hopper = by[("paper_td3", "TD3", "Hopper-v4")]
    assert hopper["agent"] == {**hopper["agent"], **PAPER_AGENT} and hopper["start_steps"] == 1000
    assert hopper["update_schedule"] == "episode_end" and hopper["steps"] == 2000
    assert by[("paper_td3", "TD3", "HalfCheetah-v4")]["start_steps"] == 10000
    assert by[("paper_td3", "TD3 small", "Hopper-v4")]["agent"]["hidden"] == 32
    plain = by[("plain", "TD3", "Hopper-v4")]
    assert plain["agent"]["critic"] == "ne" and plain["agent"]["hidden"] == 64 and "update_schedule" not in plain
