"""SAC follows the Primacy-Bias / sparse-training setup: shapes, squashed log-probabilities, soft targets, α."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from neuroplastic import loop, runs
from tests.conftest import advance, build_run, equal_states, full_state, random_batch, tiny_config


def test_defaults_and_shapes():
    run, _ = build_run(agent="sac", hidden=256)
    a = run.agent
    p = a.params
    assert (p.lr, p.temperature_lr, p.batch_size, p.gamma, p.tau, p.init_temperature) == (
        3e-4,
        3e-4,
        64,
        0.99,
        0.005,
        1.0,
    )
    actor, critic = a.nets["actor"], a.nets["critic"]
    assert [tuple(layer.weight.shape) for layer in actor.net.layers] == [(256, 11), (256, 256), (6, 256)]
    assert [tuple(layer.weight.shape) for layer in critic.q2.layers] == [(256, 14), (256, 256), (1, 256)]
    assert a.target_entropy == -1.5  # −|A|/2, Hopper |A| = 3
    assert a.nets["temperature"]().item() == pytest.approx(1.0)
    assert set(a.targets) == {"critic"} and set(a.optimizers) == {"actor", "critic", "temperature"}


def test_target_entropy_default_is_minus_half_the_action_dim_and_overridable():
    # tf-agents `SacAgent._get_default_target_entropy` (the sparse-training study) and jaxrl's `SACLearner`
    # (Primacy Bias) both use −dim(A)/2; the SAC paper's −dim(A) is a config value.
    run, _ = build_run(agent="sac", env="Humanoid-v4")
    assert run.agent.target_entropy == -17 / 2
    cfg = runs.resolve(tiny_config(agent={"name": "sac", "hidden": 32, "target_entropy": -17.0}, env="Humanoid-v4"))
    assert loop.build(cfg, torch.device("cpu")).agent.target_entropy == -17.0


def test_log_prob_matches_torch_tanh_gaussian():
    run, _ = build_run(agent="sac", env="Humanoid-v4")  # max_action 0.4
    a = run.agent
    actor = a.nets["actor"]
    obs = random_batch(a, done_prob=0.1).obs
    torch.manual_seed(3)
    action, log_prob = actor.sample(obs)
    mean, log_std = actor.dist_params(obs)
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform(cache_size=1)])
    torch.manual_seed(3)
    squashed = dist.rsample()
    torch.testing.assert_close(action, a.env.max_action * squashed)
    torch.testing.assert_close(log_prob, dist.log_prob(squashed).sum(-1, keepdim=True), rtol=1e-4, atol=1e-4)
    assert action.abs().max() <= a.env.max_action
    # evaluation acts with the mean, exploration samples
    o = obs[0].numpy()
    assert torch.allclose(torch.as_tensor(a.act(o, explore=False)), a.env.max_action * torch.tanh(mean[0]))
    assert not torch.allclose(torch.as_tensor(a.act(o, explore=True)), torch.as_tensor(a.act(o, explore=True)))


def test_update_matches_hand_computed_soft_target_and_losses():
    run, _ = build_run(agent="sac")
    a = run.agent
    batch = random_batch(a, done_prob=0.1)
    actor0, critic0 = copy.deepcopy(a.nets["actor"]), copy.deepcopy(a.nets["critic"])
    target0, alpha0 = copy.deepcopy(a.targets["critic"]), a.nets["temperature"]().detach().clone()
    state = torch.get_rng_state()
    a.update(batch)
    torch.set_rng_state(state)
    p = a.params
    next_action, next_log_prob = actor0.sample(batch.next_obs)
    tq = torch.min(*target0(batch.next_obs, next_action)) - alpha0 * next_log_prob
    y = p.reward_scale * batch.reward + batch.not_done * p.gamma * tq
    q1, q2 = critic0(batch.obs, batch.action)
    expected_critic = F.mse_loss(q1, y) + F.mse_loss(q2, y)
    logs = a.log_values()
    torch.testing.assert_close(logs["critic_loss"], expected_critic.detach(), rtol=1e-5, atol=1e-6)
    # Polyak on the critic every update: target = (1−τ)·target0 + τ·critic after its step
    for t0, t, o in zip(
        target0.parameters(), a.targets["critic"].parameters(), a.nets["critic"].parameters(), strict=True
    ):
        torch.testing.assert_close(t, (1 - p.tau) * t0 + p.tau * o)
    # the actor and α each took one step
    assert equal_states(actor0.state_dict(), a.nets["actor"].state_dict()) != []
    assert a.nets["temperature"]().item() != pytest.approx(1.0, abs=0)
    assert logs["temperature"].item() == pytest.approx(1.0)


def test_temperature_moves_towards_the_target_entropy():
    run, _ = build_run(agent="sac")
    a = run.agent
    batch = random_batch(a, done_prob=0.1)
    a.target_entropy = 1e6  # entropy far below target: α must grow
    a.update(batch)
    assert a.nets["temperature"]().item() > 1.0
    a.target_entropy = -1e6  # far above: α must shrink
    for _ in range(3):
        a.update(batch)
    assert a.nets["temperature"]().item() < a.log_values()["temperature"].item()


def test_fixed_temperature_switch():
    run, _ = build_run(agent="sac")
    a = run.agent
    a.params = a.params.model_copy(update={"learn_temperature": False})
    a.update(random_batch(a, done_prob=0.1))
    assert a.nets["temperature"]().item() == 1.0


def test_state_dict_round_trip_continues_identically():
    run, st = build_run(agent="sac", start_steps=50, steps=200)
    advance(run, st, 80)
    saved = copy.deepcopy(run.agent.state_dict())
    rng = torch.get_rng_state()
    batch = run.replay.sample(64)
    run.agent.update(batch)
    after_one = copy.deepcopy(run.agent.state_dict())
    other, _ = build_run(agent="sac", start_steps=50, steps=200)
    other.agent.load_state_dict(saved)
    torch.set_rng_state(rng)
    other.agent.update(batch)
    assert equal_states(other.agent.state_dict(), after_one) == []


def test_sac_trains_and_stays_finite():
    run, st = build_run(agent="sac", start_steps=50, steps=200)
    advance(run, st, 200)
    assert run.agent.updates == 150
    assert not bool(run.agent.nonfinite())
    assert all(math.isfinite(v.item()) for v in run.agent.log_values().values())
    assert full_state(run)["agent"]["updates"] == 150


def test_weight_decay_adds_lambda_sum_of_squares_of_each_role_kernels():
    """The sparse-training study's dense SAC has weight decay 1e-4 (rigl `sac_mujoco_dense_config.gin`): Keras
    L2, λ·Σw² on every kernel of actor and critics, inside each network's own loss."""
    cfg = runs.resolve(tiny_config(agent={"name": "sac", "hidden": 16, "weight_decay": 1e-4}))
    agent = loop.build(cfg, torch.device("cpu")).agent
    for role, n_kernels in (("actor", 3), ("critic", 6)):
        kernels = [m.weight for m in agent.nets[role].modules() if isinstance(m, torch.nn.Linear)]
        assert len(kernels) == n_kernels
        expected = 1e-4 * sum(float((w.detach().double() ** 2).sum()) for w in kernels)
        assert float(agent.l2_penalty(role).detach()) == pytest.approx(expected, rel=1e-5)
