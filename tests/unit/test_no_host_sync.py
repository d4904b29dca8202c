"""The update step never synchronises with the host: no .item(), .cpu(), .tolist(), .numpy() or bool(tensor).

On CPU a sync costs nothing, so this guards the code path itself: the tensor methods that force a device→host
copy are patched to raise while `agent.update` runs. torch.optim is exempt: it keeps its step counters on the
host on purpose (on CUDA too), so its `.item()` calls never wait for the device.
"""

from __future__ import annotations

import pytest
import torch

from neuroplastic import loop, runs
from neuroplastic.agents import AGENTS
from neuroplastic.agents.base import Agent
from tests.conftest import forbid_host_sync, tiny_config


def test_guard_catches_a_sync():
    with pytest.raises(AssertionError, match="host sync"), forbid_host_sync():
        torch.ones(1).item()


# Per agent: config overrides and how many env steps to collect before updating (pixels render slowly).
AGENT_SETUPS = {
    "td3": ({}, 300),
    "sac": ({}, 300),
    "drqv2": (
        {
            "agent": {"name": "drqv2", "batch_size": 16, "hidden": 64, "feature_dim": 16},
            "env": "dmc-pixels:cartpole-swingup",
            "env_options": {"size": 32, "episode_frames": 20},
        },
        30,
    ),
    # target_update_period 4: the captured steps include both variants (with and without the target copy).
    "dqn": (
        {"agent": {"name": "dqn", "hidden": 16, "batch_size": 32, "target_update_period": 4}, "env": "CartPole-v1"},
        300,
    ),
    # On-policy: the update batches come from the full rollout (`loop.update_batches`), prepared inside the guard.
    "ppo": ({"agent": {"name": "ppo", "hidden": 16, "rollout_length": 64, "batch_size": 16}, "start_steps": 0}, 63),
}


@pytest.mark.parametrize("agent", sorted(a for a in AGENTS if a in AGENT_SETUPS))
def test_update_has_no_host_sync(agent):
    overrides, collect_steps = AGENT_SETUPS[agent]
    run = loop.build(runs.resolve(tiny_config(**{"agent": agent, **overrides})), torch.device("cpu"))
    state = loop.LoopState()
    for t in range(1, collect_steps + 1):
        loop.collect(run, state, t)
    if run.agent.on_policy:
        loop.collect(run, state, collect_steps + 1)  # the rollout's last step: now it is full
        with forbid_host_sync():
            for batch in loop.update_batches(run, state, collect_steps + 1):
                run.agent.update(batch)
        assert run.agent.updates == run.agent.params.epochs * 4
        return
    with forbid_host_sync():
        for _ in range(4):
            batch = run.replay.sample(run.agent.params.batch_size)
            run.agent.update(batch)


# Agents with a captured form (`learn`): all of them.
CAPTURABLE = sorted(a for a in AGENTS if a in AGENT_SETUPS and AGENTS[a].learn is not Agent.learn)
# Per agent: overrides of the method's params (DQN's only network is the "critic").
METHOD_OVERRIDES = {"dqn": {"nets": "critic"}}


def test_every_agent_is_capturable():
    assert CAPTURABLE == sorted(AGENTS) == sorted(AGENT_SETUPS)


@pytest.mark.parametrize("method", [None, "ne_code"])
@pytest.mark.parametrize("agent", CAPTURABLE)
def test_captured_step_has_no_host_sync(agent, method):
    """The captured update's host side (event checks, method clocks, fingerprints, host-value refresh) and the
    compiled call itself. Tracing happens before the trap: the compiler may read tensors while it traces. PPO:
    the minibatches of a full rollout (preparing it, before the trap; the lr and epochs on the host, inside)."""
    from neuroplastic import capture

    overrides, collect_steps = AGENT_SETUPS[agent]
    methods = [{"name": method, **METHOD_OVERRIDES.get(agent, {}), "growth": {"delta": 1000}}] if method else []
    cfg = tiny_config(**{"agent": agent, **overrides, "method": methods})
    run = loop.build(runs.resolve(cfg), torch.device("cpu"))
    state = loop.LoopState()
    for t in range(1, collect_steps + 1):
        loop.collect(run, state, t)
    if run.agent.on_policy:
        loop.collect(run, state, collect_steps + 1)  # the rollout's last step: now it is full
        batches = loop.update_batches(run, state, collect_steps + 1)
    else:
        batches = iter(lambda: run.replay.sample(run.agent.params.batch_size), None)
    update = capture.CapturedUpdate(run.agent, "compile", backend="eager")
    for _ in range(4):  # Adam state (eager), then both traced variants (DQN: with the target copy at update 4)
        update(next(batches))
    with forbid_host_sync():
        for _ in range(4):
            update(next(batches))
    assert update.captured_updates >= 4
