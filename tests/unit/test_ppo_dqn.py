"""PPO and DQN agents, Atari preprocessing, sparse methods on them (MLP and Nature CNN), the scaled dense baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from neuroplastic import atari, envs, loop, runs
from neuroplastic.agents.dqn import DQN, DQNParams, linear_epsilon
from neuroplastic.agents.ppo import PPOParams, clipped_surrogate, gae
from neuroplastic.methods import MethodStack
from neuroplastic.methods.dense_scaled import matching_spec, param_count, sparse_param_count
from neuroplastic.nets import MLPSpec, NatureCNN, NatureCNNSpec
from neuroplastic.replay import Batch
from neuroplastic.topology.masks import Topology


# --- PPO ------------------------------------------------------------------------------------------------
def test_gae_matches_hand_computed_rollout():
    # 4 steps; step 1 terminates (no bootstrap, recursion cut), step 3 is the rollout's last (bootstraps V(s')).
    r = torch.tensor([1.0, 2.0, 0.5, -1.0])
    v = torch.tensor([0.5, 1.0, 0.2, 0.3])
    v_next = torch.tensor([1.0, 9.0, 0.3, 0.8])
    term = torch.tensor([False, True, False, False])
    done = term.clone()
    g, lam = 0.9, 0.5
    adv, ret = gae(r, v, v_next, term, done, g, lam)
    d3 = -1.0 + 0.9 * 0.8 - 0.3  # -0.58
    d2 = 0.5 + 0.9 * 0.3 - 0.2  # 0.57
    d1 = 2.0 - 1.0  # terminated: V(s') = 9 ignored
    d0 = 1.0 + 0.9 * 1.0 - 0.5  # 1.4
    a3 = d3
    a2 = d2 + 0.45 * a3
    a1 = d1  # cut at the termination
    a0 = d0 + 0.45 * a1
    expected = torch.tensor([a0, a1, a2, a3])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + v, atol=1e-6)
    # A time-limit truncation bootstraps through V(s') but still cuts the recursion.
    trunc_done = torch.tensor([False, False, True, False])
    adv_t, _ = gae(r, v, v_next, torch.zeros(4, dtype=torch.bool), trunc_done, g, lam)
    d1_t = 2.0 + 0.9 * 9.0 - 1.0
    assert math.isclose(float(adv_t[2]), d2, abs_tol=1e-6)
    assert math.isclose(float(adv_t[1]), d1_t + 0.45 * d2, abs_tol=1e-5)


def test_clipped_surrogate_matches_hand_values():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.7]))
    adv = torch.tensor([2.0, 2.0, -1.0, -1.0])
    # ratios 1.5, 0.5, 1.1, 0.7 with ε = 0.2: min(ρA, clip(ρ)A) = min(3, 2.4), min(1, 1.6), min(-1.1, -1.1),
    # min(-0.7, -0.8) → 2.4, 1.0, -1.1, -0.8.
    loss = clipped_surrogate(new, old, adv, 0.2)
    assert math.isclose(float(loss), -(2.4 + 1.0 - 1.1 - 0.8) / 4, abs_tol=1e-6)


# --- DQN ------------------------------------------------------------------------------------------------
def test_linear_epsilon_schedule():
    # Dopamine: 1 during warm-up, then linear to the final value over the decay period, then flat.
    assert linear_epsilon(0, 0.01, 1000, 200) == 1.0
    assert linear_epsilon(200, 0.01, 1000, 200) == 1.0
    assert math.isclose(linear_epsilon(700, 0.01, 1000, 200), 0.01 + 0.99 * 0.5)
    assert math.isclose(linear_epsilon(1200, 0.01, 1000, 200), 0.01)
    assert math.isclose(linear_epsilon(10**6, 0.01, 1000, 200), 0.01)
    assert linear_epsilon(5, 0.01, 0, 0) == 0.01  # classic control: constant


class FixedQ(nn.Module):
    """Q-values from a fixed table, ignoring the observation (one row per sample)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.table


def _dqn(**params) -> DQN:
    spec = envs.EnvSpec(obs_dim=3, act_dim=1, max_action=1.0, max_episode_steps=10, obs_shape=(3,), n_actions=3)
    return DQN(DQNParams(hidden=8, **params), spec, torch.device("cpu"), MethodStack([]), seed=0)


@pytest.mark.parametrize("double_q", [False, True])
def test_dqn_td_target(double_q):
    agent = _dqn(double_q=double_q, gamma=0.5, clip_rewards=True)
    online = torch.tensor([[1.0, 5.0, 2.0], [0.0, 0.0, 9.0]])
    target = torch.tensor([[4.0, 1.0, 3.0], [7.0, 2.0, 1.0]])
    agent.nets["critic"], agent.targets["critic"] = FixedQ(online), FixedQ(target)
    batch = Batch(
        obs=torch.zeros(2, 3),
        action=torch.zeros(2, 1),
        reward=torch.tensor([[3.0], [-0.5]]),  # clipped to 1.0, -0.5
        next_obs=torch.zeros(2, 3),
        not_done=torch.tensor([[1.0], [0.0]]),
    )
    y = agent.td_target(batch)
    # plain: max target = 4 → 1 + 0.5·4 = 3; double: argmax online = 1 → target 1 → 1 + 0.5·1 = 1.5.
    first = 1.5 if double_q else 3.0
    assert torch.allclose(y, torch.tensor([[first], [-0.5]]))


def test_dqn_domain_defaults_and_epsilon():
    agent = _dqn()
    assert agent.cfg.batch_size == 128 and agent.cfg.loss == "mse" and agent.replay_ratio == 1.0
    agent.env_step = 10
    assert agent.epsilon(explore=True) == 0.01 and agent.epsilon(explore=False) == 0.0


# --- Atari ----------------------------------------------------------------------------------------------
def test_area_resize_averages_exactly():
    rows = atari.area_matrix(210, 84)
    assert np.allclose(rows.sum(1), 1.0)
    # 210/84 = 2.5: output row 0 = source rows 0, 1 and half of row 2.
    assert np.allclose(rows[0, :3], [0.4, 0.4, 0.2])
    img = np.arange(210, dtype=np.float64)[:, None] * np.ones((1, 160))
    small = rows @ img @ atari.area_matrix(160, 84).T
    assert np.allclose(small[0], (0 + 1 + 0.5 * 2) / 2.5)


def _trajectory(seed: int, steps: int = 60) -> list[np.ndarray]:
    env = envs.make_env("ALE/Pong-v5", seed)
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    for i in range(steps):
        obs, *_ = env.step(np.int64(2 + i % 2))  # alternate UP / DOWN
        frames.append(obs)
    env.close()
    return frames


def test_atari_frame_stack_and_sticky_actions():
    env = envs.make_env("ALE/Pong-v5", 0)
    spec = envs.spec_of(env)
    assert spec.obs_shape == (4, 84, 84) and spec.n_actions == 6 and spec.max_episode_steps == 27_000
    assert env.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and all(np.array_equal(obs[0], obs[k]) for k in range(4))
    nxt, *_ = env.step(np.int64(0))
    assert np.array_equal(nxt[:3], obs[1:])  # the stack shifts by one frame per agent step
    # Save mid-episode, step on, restore, step again: identical frames (ALE state with its sticky-action RNG).
    for _ in range(20):
        env.step(np.int64(2))
    blob = envs.get_state(env)
    first = [env.step(np.int64(3))[0] for _ in range(15)]
    envs.set_state(env, blob)
    again = [env.step(np.int64(3))[0] for _ in range(15)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    env.close()
    # Same seed → same frames; another seed → the sticky actions differ, so do the frames (Pong is otherwise
    # deterministic).
    a, b, c = _trajectory(0), _trajectory(0), _trajectory(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_human_normalised_scores_shipped():
    scores = atari.human_random_scores()
    assert all(atari.snake_case(g) in scores for g in atari.ATARI_15)
    assert scores["pong"] == (-20.7, 14.6)
    assert atari.human_normalized("ALE/Pong-v5", 14.6) == pytest.approx(1.0)
    assert atari.human_normalized("ALE/MsPacman-v5", 307.3) == pytest.approx(0.0)


# --- sparse methods on PPO / DQN --------------------------------------------------------------------------
def test_erk_on_nature_cnn_matches_hand_table():
    net = NatureCNN(NatureCNNSpec(4, 84, 6))
    topo = Topology({"critic": net}, ["critic"])
    got = topo.init_masks("critic", 0.9, "erk", "random", count_norms=False, generator=torch.Generator().manual_seed(0))
    # Kernels (out, in, kh, kw): 32·4·8·8 = 8192, 64·32·4·4 = 32768, 64·64·3·3 = 36864; "same" padding:
    # 84 → 21 → 11 → 11, fc 7744 → 512 (3,964,928), out 512 → 6 (3072); N = 4,045,824.
    # ERK scores Σdims/Πdims: out 518/3072 is too dense → dense; ε = (0.1·(N − 3072) − 0.9·3072) / (52 + 104 +
    # 134 + 8256) = 401510.4 / 8546 = 46.98226; s_l = 1 − ε·Σdims_l/N_l.
    eps = 401510.4 / 8546
    expected = {
        "convs.0": 1 - eps * 52 / 8192,  # 0.70177
        "convs.1": 1 - eps * 104 / 32768,  # 0.85089
        "convs.2": 1 - eps * 134 / 36864,  # 0.82922
        "head.layers.0": 1 - eps * 8256 / 3964928,  # 0.90217
        "head.layers.1": 0.0,
    }
    assert got == pytest.approx(expected, abs=1e-9)
    assert got["convs.0"] == pytest.approx(0.70177, abs=1e-5)
    conv = net.convs[0]
    assert int(conv.mask.sum()) == 8192 - int(expected["convs.0"] * 8192)
    assert bool((conv.weight[~conv.mask] == 0).all())


def _train_briefly(cfg: dict, updates: int) -> loop.Run:
    run = loop.build(runs.resolve(cfg), torch.device("cpu"))
    state = loop.LoopState()
    t = 0
    while run.agent.updates < updates:
        t += 1
        loop.advance(run, state, t)
    return run


def _assert_masked_zero(run: loop.Run) -> int:
    topo = next(m for m in run.methods).topology
    layers = topo.sparse_layers()
    assert layers
    for layer in layers:
        assert bool((layer.weight[~layer.mask] == 0).all()), layer.key
    return len(layers)


@pytest.mark.parametrize("method", ["static", "rigl"])
def test_masks_stay_zero_through_ppo_epochs(method):
    cfg = {
        "agent": {"name": "ppo", "hidden": 16, "rollout_length": 64, "batch_size": 16, "epochs": 3},
        "env": "Hopper-v4",
        "steps": 256,
        "start_steps": 0,
        "method": [{"name": method, "sparsity": 0.9, **({"delta": 5} if method == "rigl" else {})}],
    }
    run = _train_briefly(cfg, updates=24)  # two full rollouts × 3 epochs × 4 minibatches
    assert run.agent.updates == 24 and run.agent.iterations == 2
    assert _assert_masked_zero(run) == 6  # actor 3 + critic 3 layers
    if method == "rigl":
        assert next(m for m in run.methods).mask_updates["actor"] >= 2


def test_masks_stay_zero_through_dqn_updates_on_the_cnn():
    cfg = {
        "agent": {"name": "dqn", "conv_channels": [4, 4, 4], "hidden": 16, "batch_size": 4, "buffer_size": 200},
        "env": "ALE/Pong-v5",
        "steps": 200,
        "start_steps": 20,
        "method": [{"name": "set", "sparsity": 0.8, "delta": 2, "nets": "critic"}],
    }
    run = _train_briefly(cfg, updates=6)
    assert _assert_masked_zero(run) == 5  # three convs, the fc layer and (in this tiny net) the output layer
    assert next(m for m in run.methods).mask_updates["critic"] >= 2
    # Targets share the topology.
    for name, module in run.agent.targets["critic"].named_modules():
        if getattr(module, "mask", None) is not None:
            assert bool((module.weight[~module.mask] == 0).all()), name


def test_sparse_methods_default_to_the_q_network_of_dqn():
    """`nets: both` (the sparse methods' default) takes the actor and critic an agent has: DQN's Q-network only;
    a role named on its own must still exist."""
    base = {"agent": {"name": "dqn", "hidden": 16}, "env": "CartPole-v1", "steps": 200, "start_steps": 20}
    run = loop.build(runs.resolve({**base, "method": [{"name": "static", "sparsity": 0.8}]}), torch.device("cpu"))
    assert next(m for m in run.methods).topology.roles == ["critic"]
    with pytest.raises(ValueError, match=r"static\.nets: agent 'dqn' has no network\(s\) \['actor'\]"):
        loop.build(runs.resolve({**base, "method": [{"name": "static", "nets": "actor"}]}), torch.device("cpu"))


# --- scaled dense baseline ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "sparsity"),
    [
        (MLPSpec(11, (64, 64), 3), 0.5),
        (MLPSpec(11, (64, 64), 3), 0.9),
        (MLPSpec(4, (512, 512), 2), 0.95),
        (MLPSpec(17 + 6, (256, 256), 1), 0.99),
        (NatureCNNSpec(4, 84, 6), 0.9),
    ],
)
def test_scaled_dense_matches_sparse_parameter_count(spec, sparsity):
    target = sparse_param_count(spec, sparsity)
    full = param_count(spec)
    assert target < full * (1 - sparsity) + 2 * sum(spec.hidden if isinstance(spec, MLPSpec) else (spec.hidden,))
    scaled = matching_spec(spec, target)
    assert abs(param_count(scaled) - target) <= 0.01 * target
    assert all(
        w < f
        for w, f in zip(
            scaled.hidden if isinstance(spec, MLPSpec) else scaled.channels,
            spec.hidden if isinstance(spec, MLPSpec) else spec.channels,
            strict=True,
        )
    )


def test_ppo_weight_decay_follows_networks_that_plasticity_injection_replaces():
    cfg = {
        "agent": {
            "name": "ppo",
            "hidden": 16,
            "rollout_length": 32,
            "batch_size": 16,
            "epochs": 1,
            "weight_decay": 1e-3,
        },
        "env": "Hopper-v4",
        "steps": 256,
        "start_steps": 0,
        "method": [{"name": "plasticity_injection", "at_step": 40}],
    }
    run = _train_briefly(cfg, updates=2)
    before = {id(w) for w in run.agent.decayed_kernels()}
    run = _train_briefly(cfg, updates=8)  # the injection at step 40 happened, then more updates
    live = {id(p) for r in ("actor", "critic") for p in run.agent.nets[r].parameters()}
    kernels = {id(w) for w in run.agent.decayed_kernels()}
    assert kernels <= live and len(kernels) > len(before)  # the injected heads' kernels are decayed too


# --- the study's PPO networks (rigl sparse_ppo_actor_network.py, sparse_value_network.py) -------------------
def _ppo_run(**agent) -> loop.Run:
    cfg = {"agent": {"name": "ppo", **agent}, "env": "Hopper-v4", "steps": 4096, "start_steps": 0}
    return loop.build(runs.resolve(cfg), torch.device("cpu"))


def test_ppo_value_network_is_relu_with_small_uniform_output():
    torch.manual_seed(0)
    agent = _ppo_run().agent
    critic = agent.nets["critic"]
    assert critic.spec.activation == "relu" and agent.nets["actor"].net.spec.activation == "tanh"
    hidden = critic.hidden_activations(torch.randn(64, agent.env.obs_dim))
    assert all(bool((h >= 0).all()) and bool((h == 0).any()) for h in hidden)  # ReLU, not tanh
    out = critic.layers[-1].weight.detach()
    assert float(out.abs().max()) <= 0.03 and float(out.abs().max()) > 0.02  # U(±0.03), not orthogonal gain 1
    first = critic.layers[0].weight
    # Orthogonal hidden kernel (11 → 64: orthonormal columns).
    assert torch.allclose(first.T @ first, torch.eye(first.shape[1]), atol=1e-5)


def test_ppo_actor_mean_is_squashed_and_std_starts_at_035():
    torch.manual_seed(0)
    agent = _ppo_run().agent
    actor = agent.nets["actor"]
    assert torch.allclose(actor.std(), torch.full((agent.env.act_dim,), 0.35), atol=1e-6)
    # Mean layer VarianceScaling(0.1, fan_in=64): entries have std √(0.1/64) ≈ 0.040 (orthogonal·0.01: ≈ 0.001).
    w = actor.net.layers[-1].weight.detach()
    assert 0.028 < float(w.std()) < 0.052 and float(w.abs().max()) <= 2 * math.sqrt(0.1 / 64) / 0.8796 + 1e-6
    obs = torch.randn(256, agent.env.obs_dim)
    with torch.no_grad():
        assert torch.allclose(actor(obs), agent.env.max_action * torch.tanh(actor.net(obs)))
        actor.net.layers[-1].weight.mul_(1e3)  # a large raw output stays inside the bounds
        mean = actor(obs)
    assert float(mean.abs().max()) <= agent.env.max_action and float(mean.abs().max()) > 0.99
    _, entropy = actor.log_prob(torch.zeros(1, agent.env.obs_dim), torch.zeros(1, agent.env.act_dim))
    assert float(entropy[0].detach()) == pytest.approx(
        agent.env.act_dim * (math.log(0.35) + 0.5 * (1 + math.log(2 * math.pi)))
    )


def test_ppo_l2_is_lambda_sum_of_squares_without_half():
    agent = _ppo_run(weight_decay=1e-3).agent
    kernels = [m.weight for r in ("actor", "critic") for m in agent.nets[r].modules() if hasattr(m, "mask")]
    assert len(kernels) == 6  # 3 actor + 3 value kernels; the std bias and biases are not decayed
    expected = 1e-3 * sum(float((w.detach().double() ** 2).sum()) for w in kernels)
    assert float(agent.l2_penalty().detach()) == pytest.approx(expected, rel=1e-5)
    assert agent.params.weight_decay == 1e-3 and PPOParams().weight_decay == 1e-6  # the study's dense value


# --- the study's DQN settings (rigl dqn_train_eval.py / dqn_gym_dense_config.gin, dqn_agents.py) ----------
def test_dqn_classic_l2_is_1e6_on_hidden_kernels_only():
    agent = _dqn()
    assert agent.cfg.weight_decay == 1e-6
    net = agent.nets["critic"]
    kernels = agent.decayed_kernels()
    assert [k.shape for k in kernels] == [layer.weight.shape for layer in net.layers[:-1]]  # not the Q output
    expected = 1e-6 * sum(float((layer.weight.detach().double() ** 2).sum()) for layer in net.layers[:-1])
    assert float(agent.l2_penalty().detach()) == pytest.approx(expected, rel=1e-5)


def test_dqn_atari_init_is_glorot_uniform():
    torch.manual_seed(0)
    cfg = {"agent": {"name": "dqn", "hidden": 64, "buffer_size": 100}, "env": "ALE/Pong-v5", "steps": 200}
    agent = loop.build(runs.resolve({**cfg, "start_steps": 20}), torch.device("cpu")).agent
    net = agent.nets["critic"]
    assert agent.cfg.weight_decay == 0.0
    for layer in [*net.convs, *net.head.layers]:
        receptive = layer.weight[0, 0].numel()
        fan_in, fan_out = layer.weight.shape[1] * receptive, layer.weight.shape[0] * receptive
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = layer.weight.detach()
        # Uniform on ±limit: the max is near the limit and the std is limit/√3 (Dopamine's scaling differs).
        assert float(w.abs().max()) <= limit and float(w.abs().max()) > 0.95 * limit
        assert float(w.std()) == pytest.approx(limit / math.sqrt(3), rel=0.1)
        assert bool((layer.bias == 0).all())


def test_cartpole_v0_is_the_studys_200_step_task():
    assert envs.env_id_problem("CartPole-v0") is None
    assert envs.spec_of(envs.make_env("CartPole-v0", seed=0)).max_episode_steps == 200
