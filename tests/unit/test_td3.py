"""TD3 follows the author code: targets, delays, noise scales, time-limit bootstrapping."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from neuroplastic import loop, runs
from tests.conftest import random_batch, tiny_config


def _run(**kw):
    return loop.build(runs.resolve(tiny_config(**kw)), torch.device("cpu"))


def test_networks_match_author_shapes():
    run = _run()
    actor, critic = run.agent.nets["actor"], run.agent.nets["critic"]
    assert [tuple(layer.weight.shape) for layer in actor.net.layers] == [(256, 11), (256, 256), (3, 256)]
    assert [tuple(layer.weight.shape) for layer in critic.q1.layers] == [(256, 14), (256, 256), (1, 256)]
    ne = _run(agent={"name": "td3", "critic": "ne"}).agent.nets["critic"]
    assert [tuple(layer.weight.shape) for layer in ne.q2.layers] == [
        (256, 14),
        (256, 256),
        (256, 256),
        (1, 256),
    ]
    assert isinstance(ne.q1.norms[2], torch.nn.LayerNorm) and isinstance(ne.q1.norms[1], torch.nn.Identity)


def test_critic_update_matches_hand_computed_target():
    run = _run()
    agent = run.agent
    batch = random_batch(run.agent, done_prob=0.1)
    critic0 = copy.deepcopy(agent.nets["critic"])
    t_actor, t_critic = copy.deepcopy(agent.targets["actor"]), copy.deepcopy(agent.targets["critic"])
    state = torch.get_rng_state()
    agent.update(batch)  # update 1: critic only (policy delay 2)
    torch.set_rng_state(state)
    p, m = agent.params, agent.env.max_action
    noise = (torch.randn_like(batch.action) * p.policy_noise * m).clamp(-p.noise_clip * m, p.noise_clip * m)
    a2 = (t_actor(batch.next_obs) + noise).clamp(-m, m)
    y = batch.reward + batch.not_done * p.gamma * torch.min(*t_critic(batch.next_obs, a2))
    q1, q2 = critic0(batch.obs, batch.action)
    expected = (F.mse_loss(q1, y) + F.mse_loss(q2, y)).detach()
    assert torch.allclose(agent.log_values()["critic_loss"], expected, rtol=1e-6)
    # no actor step and no target update on the first update
    assert all(
        torch.equal(a, b) for a, b in zip(t_actor.parameters(), agent.targets["actor"].parameters(), strict=True)
    )
    agent.update(batch)  # update 2: actor and Polyak targets
    assert not all(
        torch.equal(a, b) for a, b in zip(t_actor.parameters(), agent.targets["actor"].parameters(), strict=True)
    )
    expected_target = [
        (1 - p.tau) * t + p.tau * o
        for t, o in zip(t_critic.parameters(), agent.nets["critic"].parameters(), strict=True)
    ]
    assert all(torch.allclose(e, t) for e, t in zip(expected_target, agent.targets["critic"].parameters(), strict=True))


def test_exploration_noise_scales_with_max_action():
    run = _run(env="Humanoid-v4")
    agent = run.agent
    assert abs(agent.env.max_action - 0.4) < 1e-6
    obs = np.zeros(agent.env.obs_dim, dtype=np.float32)
    greedy = agent.act(obs, explore=False)
    noisy = np.stack([agent.act(obs, explore=True) for _ in range(2000)])
    dev = noisy - greedy
    inside = np.abs(noisy) < 0.4 - 1e-6
    assert abs(dev[inside].std() - 0.04) < 0.004
    assert np.abs(noisy).max() <= 0.4 + 1e-6


def test_time_limits_bootstrap_terminations_do_not():
    import gymnasium as gym

    run = _run(start_steps=10_000)
    # A 25-step time limit makes truncations frequent; random Hopper actions also terminate episodes.
    run.env = gym.wrappers.TimeLimit(run.env.unwrapped, max_episode_steps=25)
    run.obs, _ = run.env.reset(seed=0)
    state = loop.LoopState()
    kinds = set()
    for t in range(1, 2000):
        before_episode = state.episode
        step_in_episode = state.episode_steps + 1
        loop.collect(run, state, t)
        nd = run.replay.not_done[run.replay.ptr - 1, 0].item()
        ended = state.episode != before_episode
        if ended and step_in_episode == 25 and nd == 1.0:
            kinds.add("truncated-bootstraps")
        if ended and step_in_episode < 25:
            assert nd == 0.0
            kinds.add("terminated-cuts")
        if not ended:
            assert nd == 1.0
    assert kinds == {"truncated-bootstraps", "terminated-cuts"}
