"""NE: ne_code schedule numbers, paper-mode pruning cap and monotone density, plasticity metrics on planted
dead units, experience review (early segment, firing rate), hooks (skipped step, static/dense actor, LN)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from neuroplastic import metrics
from neuroplastic.agents.td3 import TD3, TD3Params
from neuroplastic.envs import EnvSpec
from neuroplastic.methods import METHODS, Method, MethodStack, RunContext
from neuroplastic.methods.review import ExperienceReview, ReviewParams
from neuroplastic.nets import MLP, MLPSpec
from neuroplastic.replay import ReplayBuffer
from tests.conftest import forbid_host_sync, random_batch

CPU = torch.device("cpu")
GROWTH_FAST = {"delta": 2, "schedule": "uniform", "uniform_fraction": 0.05}


def build(name: str, obs: int = 11, act: int = 3, critic: str = "ne", hidden: int = 256, extra=(), **params):
    cls = METHODS[name]
    ctx = RunContext(seed=0, steps=1_025_000, start_steps=25_000, device=CPU)
    method = cls(cls.Params.model_validate(params), ctx)
    stack = MethodStack([method, *extra])
    torch.manual_seed(0)
    agent = TD3(TD3Params(critic=critic, hidden=hidden), EnvSpec(obs, act, 1.0, 1000), CPU, stack, seed=0)
    return agent, method, stack


# --- ne_code: the NE code's schedule numbers (`NE/STL_Scheduler.py:434-588`) --------------------------------
@pytest.mark.parametrize(("obs", "act"), [(11, 3), (17, 6)])
def test_ne_code_counts_per_update_and_updates_to_25_percent(obs, act):
    agent, ne, _ = build("ne_code", obs, act)
    growth = ne.growth["critic"]
    assert "actor" not in ne.growth  # ne_code's actor is static
    n0 = dict(growth.n_active)
    numel = {layer.key: layer.numel for layer in growth.layers}
    # The code's formulas: space fixed once at 0.8·N − n_ones (negative for a nearly dense layer),
    # n_grow = int(space·0.008), n_prune = int(0.4·n_grow), mask1 keeps the top n_ones − n_prune by |w|; a negative
    # n_prune therefore keeps |n_prune| zero-valued entries more until the layer is dense (docs/deviations.md,
    # `growth.negative_space`).
    n_grow = {k: int((0.8 * numel[k] - n) * 0.008) for k, n in n0.items()}
    n_prune = {k: int(0.4 * v) for k, v in n_grow.items()}
    assert n_grow["critic.q1.layers.1"] > 0
    opt = agent.optimizers["critic"]
    g = torch.Generator().manual_seed(1)
    growth_updates = 0
    n_now = dict(n0)
    for layer in growth.layers:
        layer.weight.grad = torch.randn(layer.weight.shape, generator=g)
    while growth.phase == "growing":
        growth.update(growth_updates, opt, ne.pruner, None, ne.generator)
        if growth.last.phase == "growing":
            growth_updates += 1
            expected = {
                k: (n_grow[k], n_prune[k]) if n_grow[k] >= 0 else (min(-n_prune[k], numel[k] - n_now[k]), 0) for k in n0
            }
            assert growth.last.layers == expected
            n_now = {k: n_now[k] + grown - pruned for k, (grown, pruned) in expected.items()}
            assert n_now == growth.n_active
            assert all(int(layer.mask.sum()) == n_now[layer.key] for layer in growth.layers)
        assert growth_updates < 400
    # Every env of the NE code's ERK table reaches 25% global sparsity after 186–191 topology updates.
    assert 186 <= growth_updates <= 191
    # The measure is the code's (all weight tensors incl. LayerNorm), recounted here from the masks.
    critic = agent.nets["critic"]
    weights = [m.weight for m in critic.modules() if hasattr(m, "weight") and m.weight is not None]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((~layer.mask).sum()) for layer in growth.layers)
    assert zeros / total <= 0.25
    # The switch update already churns (the code restarts its clock at 0: drop fraction 0.2).
    assert growth.phase == "churn" and growth.last.phase == "churn"
    for key, (grown, pruned) in growth.last.layers.items():
        n_before = growth.n_active[key]
        assert grown == pruned == int(n_before * 0.2)


def test_ne_code_matches_the_official_topology_on_halfcheetah():
    """HalfCheetah (17, 6): +201 connections per critic hidden layer per update (334 grown, 133 pruned); the
    critic's input layer (ERK sparsity 0.019, growth space < 0) gains 3 zero-valued connections per update
    until it is dense, as the code's negative prune count does (docs/deviations.md, `growth.negative_space`)."""
    agent, ne, _ = build("ne_code", 17, 6)
    growth = ne.growth["critic"]
    opt = agent.optimizers["critic"]
    g = torch.Generator().manual_seed(1)
    for layer in growth.layers:
        layer.weight.grad = torch.randn(layer.weight.shape, generator=g)
    inputs = [layer for layer in growth.layers if layer.name.endswith("layers.0")]
    assert len(inputs) == 2 and all(0 < layer.numel - growth.n_active[layer.key] < 150 for layer in inputs)
    missing0 = {layer.key: layer.numel - growth.n_active[layer.key] for layer in inputs}
    sparsity = []
    for u in range(60):
        before = {layer.key: layer.mask.clone() for layer in inputs}
        growth.update(u, opt, ne.pruner, None, ne.generator)
        for key, (grown, pruned) in growth.last.layers.items():
            if key.endswith(("layers.1", "layers.2")):
                assert (grown, pruned) == (334, 133)
        for layer in inputs:
            added = layer.mask & ~before[layer.key]
            assert int(added.sum()) == max(0, min(3, missing0[layer.key] - 3 * u))
            assert torch.all(layer.weight[added] == 0) and torch.all(before[layer.key] <= layer.mask)
        total = growth.total
        sparsity.append(1 - growth.density())
        assert growth.density() == (growth.fixed_active + sum(growth.n_active.values())) / total
    assert all(growth.n_active[layer.key] == layer.numel for layer in inputs)  # dense after ⌈missing/3⌉ updates
    # The code's measure (exact zeros over every weight tensor incl. LayerNorm) after 20 updates.
    assert sparsity[19] == pytest.approx(0.7411, abs=5e-5)


def test_ne_code_regrows_just_pruned_entries_keeping_values_and_counts_exact():
    agent, ne, _ = build("ne_code", hidden=64)
    growth = ne.growth["critic"]
    layer = growth.layers[0]
    # Make the regrowth pick exactly the entries pruned: huge gradient on the smallest active weights.
    with torch.no_grad():
        w = layer.weight
        active = layer.mask.nonzero()
        w[layer.mask] = torch.linspace(1.0, 2.0, int(layer.mask.sum()))
    for l_ in growth.layers:
        l_.weight.grad = torch.zeros_like(l_.weight)
    k = int(max(0.0, 0.8 * layer.numel - growth.n_active[layer.key]) * 0.008)
    smallest = active[:k]  # linspace puts the smallest values first (row-major order)
    layer.weight.grad[smallest[:, 0], smallest[:, 1]] = 100.0
    before = layer.weight.detach().clone()
    growth.update(0, agent.optimizers["critic"], ne.pruner, None, ne.generator)
    grown, pruned = growth.last.layers[layer.key]
    assert (grown, pruned) == (k, int(0.4 * k))
    assert int(layer.mask.sum()) == growth.n_active[layer.key]
    # the pruned entries came back with their old values
    pruned_idx = smallest[: int(0.4 * k)]
    assert torch.equal(layer.weight[pruned_idx[:, 0], pruned_idx[:, 1]], before[pruned_idx[:, 0], pruned_idx[:, 1]])


# --- paper mode: cap and monotone density ----------------------------------------------------------------
def test_paper_pruning_respects_cap_and_density_never_decreases_until_target():
    agent, ne, stack = build(
        "ne",
        critic="td3",
        hidden=64,
        growth={"delta": 2, "schedule": "uniform", "uniform_fraction": 0.05},
        review={"enabled": False},
        pruning={"omega": 0.4, "connections": "incoming"},
    )
    critic = agent.nets["critic"]
    dead = torch.zeros(64, dtype=torch.bool)
    dead[::2] = True  # plant 32 dead units in hidden layer 1 of q1
    with torch.no_grad():
        critic.q1.layers[1].bias[dead] = -1e3
    watched = critic.q1.layers[1]
    growth = ne.growth["critic"]
    densities = [growth.density()]
    total_pruned = pruned_dead_rows = 0
    seen = 0
    for i in range(400):
        batch = random_batch(agent, seed=i)
        before = watched.mask.clone()
        dormant = torch.zeros(64, dtype=torch.bool)
        if ne.last_batch is not None:  # the minibatch the dormancy check of this update sees
            # Recompute dormancy independently: units of q1's 2nd hidden layer with zero activation.
            with torch.no_grad():
                used = ne.last_batch
                h = critic.q1.hidden_activations(torch.cat((used.obs, used.action), -1))[1]
            dormant = h.abs().mean(0) == 0
            assert torch.all(dormant[dead])  # the planted units
        agent.update(batch)
        stack.on_update(agent, batch, i)
        if growth.topology_updates > seen:
            seen = growth.topology_updates
            rec = growth.last
            for key, (_grown, pruned) in rec.layers.items():
                assert pruned <= int(0.4 * rec.budget[key])
                total_pruned += pruned
            densities.append(growth.density())
            removed = before & ~watched.mask  # no same-update regrowth in paper mode
            assert not torch.any(removed[~dormant])  # only incoming connections of dormant units
            pruned_dead_rows += int(removed[dead].sum())
        if growth.phase == "frozen":
            break
    assert growth.phase == "frozen" and growth.density() == 1.0
    assert total_pruned > 0 and pruned_dead_rows > 0
    assert all(b >= a for a, b in itertools.pairwise(densities))


def test_pruned_count_matches_masks_in_paper_mode():
    agent, ne, stack = build(
        "ne", critic="td3", hidden=64, growth={"delta": 1, "schedule": "uniform"}, review={"enabled": False}
    )
    with torch.no_grad():
        agent.nets["critic"].q2.layers[0].bias[:40] = -1e3
    for i in range(6):
        batch = random_batch(agent, seed=i)
        agent.update(batch)
        stack.on_update(agent, batch, i)
    for key, n in ne.growth["critic"].n_active.items():
        layer = next(layer for layer in ne.growth["critic"].layers if layer.key == key)
        assert int(layer.mask.sum()) == n


# --- hooks: skipped step, masks after updates, targets, static and dense actor, composition ------------
def test_topology_iteration_skips_the_optimizer_step_and_masks_hold():
    agent, ne, _stack = build("ne_code", hidden=64, growth={"delta": 3})
    critic_bias = agent.nets["critic"].q1.layers[0].bias
    for i in range(7):
        agent.update(random_batch(agent, seed=i))
    # critic topology updates at its 3rd and 6th calls: 7 calls, 5 optimizer steps
    assert float(agent.optimizers["critic"].state[critic_bias]["step"]) == 5
    assert ne.growth["critic"].topology_updates == 2
    for role in ("actor", "critic"):
        for layer in ne.topology.sparse_layers(role):
            assert torch.count_nonzero(layer.weight[~layer.mask]) == 0
            tgt = dict(agent.targets[role].named_modules())[layer.name]
            assert torch.count_nonzero(tgt.weight[~layer.mask]) == 0


def test_static_and_dense_actor():
    agent, ne, _ = build("ne_code", hidden=64, growth={"delta": 1})
    actor_masks = [layer.mask.clone() for layer in ne.topology.sparse_layers("actor")]
    assert actor_masks  # ERK leaves the hidden layer sparse
    for i in range(6):
        agent.update(random_batch(agent, seed=i))
    assert all(
        torch.equal(a, layer.mask) for a, layer in zip(actor_masks, ne.topology.sparse_layers("actor"), strict=True)
    )
    assert ne.growth["critic"].topology_updates == 6
    agent, ne, _ = build("ne", hidden=64, actor="dense")
    assert all(m.mask is None for m in agent.nets["actor"].net.layers)
    assert ne.topology.sparse_layers("critic")


def test_dense_first_last_and_layernorm_composition():
    class AddLayerNorm(Method):
        name = "_ln_test"

        def net_spec(self, role, spec):
            return spec.with_(layernorm=frozenset(range(len(spec.hidden))))

    ctx = RunContext(seed=0, steps=100, start_steps=0, device=CPU)
    agent, ne, stack = build(
        "ne", hidden=64, growth={"delta": 1, "schedule": "uniform"}, extra=[AddLayerNorm(None, ctx)]
    )
    critic = agent.nets["critic"]
    assert isinstance(critic.q1.norms[0], torch.nn.LayerNorm)
    assert critic.q1.layers[0].mask is None and critic.q1.layers[-1].mask is None  # first/last dense
    assert critic.q1.layers[1].mask is not None
    for i in range(3):
        batch = random_batch(agent, seed=i)
        agent.update(batch)
        stack.on_update(agent, batch, i)
    assert ne.growth["critic"].topology_updates == 3
    assert all(torch.all(n.weight != 0) for n in critic.q1.norms)  # LayerNorm weights never masked


def test_nets_and_params_errors():
    with pytest.raises(ValueError, match=r"ne.nets: agent 'td3' has no network\(s\) \['encoder'\]"):
        build("ne", nets=["actor", "encoder"])
    with pytest.raises(ValidationError, match=r"growth\.target_sparsity"):
        METHODS["ne"].Params.model_validate({"growth": {"target_sparsity": 0.9}})
    with pytest.raises(ValidationError, match=r"pruning\.mode"):
        METHODS["ne"].Params.model_validate({"pruning": {"mode": "magic"}})
    # the flat keys of the old layout are errors that name the nested key
    with pytest.raises(ValidationError, match=r"`delta` is now `growth.delta`.*`review_every` is now `review.every`"):
        METHODS["ne"].Params.model_validate({"delta": 100, "review_every": 50})
    with pytest.raises(ValidationError, match=r"`review: False` is now `review: \{enabled: false\}`"):
        METHODS["ne"].Params.model_validate({"review": False})


def test_presets_are_defaults_of_the_nested_models():
    ne, code = METHODS["ne"].Params(), METHODS["ne_code"].Params()
    assert ne.growth.delta == 10_000 and code.growth.delta == 100
    assert not METHODS["ne_no_review"].Params().review.enabled
    only = METHODS["ne_growth_only"].Params()
    assert only.growth.enabled and not only.pruning.enabled and not only.review.enabled
    assert METHODS["ne_static_actor"].Params().actor == "static"
    static = METHODS["ne_static"].Params()
    assert not (static.growth.enabled or static.pruning.enabled or static.review.enabled)
    # Overriding one key of a sub-model keeps the preset's other defaults at that level.
    code = METHODS["ne_code"].Params.model_validate({"growth": {"delta": 20}, "review": {"enabled": True}})
    assert (code.growth.delta, code.growth.schedule, code.growth.target_sparsity) == (20, "uniform", 0.25)
    assert code.review.enabled and code.review.mode == "code" and code.review.every == 100
    assert code.pruning.mode == "code" and code.actor == "static"
    # Every preset resolves to the same nested layout (so a resolved config names every key of every level).
    keys = {name: set(cls.Params().model_dump()) for name, cls in METHODS.items() if name.startswith("ne")}
    assert all(k == keys["ne"] for k in keys.values())
    assert set(keys["ne"]) >= {"growth", "pruning", "review", "nets"}


def test_method_state_roundtrip_continues_identically():
    def run(split: bool):
        agent, ne, stack = build("ne", hidden=32, growth=GROWTH_FAST)
        for i in range(5):
            b = random_batch(agent, seed=i)
            agent.update(b)
            stack.on_update(agent, b, i)
        if split:
            a_state, m_state, rng = agent.state_dict(), stack.state_dict(), torch.get_rng_state()
            agent, ne, stack = build("ne", hidden=32, growth=GROWTH_FAST)
            torch.set_rng_state(rng)  # the agent's target-policy noise uses the global RNG
            agent.load_state_dict(a_state)
            stack.load_state_dict(m_state)
        for i in range(5, 10):
            b = random_batch(agent, seed=i)
            agent.update(b)
            stack.on_update(agent, b, i)
        return [p.detach().clone() for p in agent.nets["critic"].parameters()], ne.growth["critic"].n_active

    p1, n1 = run(False)
    p2, n2 = run(True)
    assert n1 == n2
    assert all(torch.equal(a, b) for a, b in zip(p1, p2, strict=True))


# --- plasticity metrics on planted dead units -------------------------------------------------------
def test_dormant_ratio_and_fau_hand_computed():
    # 4 units, batch of 2: unit means |h| = [1, 0, 2, 0.05], layer mean 0.7625.
    h = torch.tensor([[2.0, 0.0, 4.0, 0.1], [0.0, 0.0, 0.0, 0.0]])
    assert float(metrics.dormant_ratio([h], 0.0)) == pytest.approx(1 / 4)
    assert float(metrics.dormant_ratio([h], 0.025)) == pytest.approx(1 / 4)
    assert float(metrics.dormant_ratio([h], 0.1)) == pytest.approx(2 / 4)  # 0.05 / 0.7625 = 0.066
    assert float(metrics.fau([h])) == pytest.approx(3 / 8)
    # Through a real MLP with planted dead units (zero incoming weights, negative bias).
    mlp = MLP(MLPSpec(2, (3,), 1))
    with torch.no_grad():
        mlp.layers[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
        mlp.layers[0].bias.copy_(torch.tensor([0.0, -1.0, 0.0]))
    x = torch.tensor([[1.0, -1.0], [3.0, 1.0]])  # unit0: [1, 3]; unit1: dead; unit2: [0, 1]
    acts = mlp.hidden_activations(x)
    values = metrics.plasticity({"net": acts})
    # means: [2, 0, 0.5], layer mean 2.5/3; scores [2.4, 0, 0.6]
    assert values["dormant.net.tau0"] == pytest.approx(1 / 3)
    assert values["dormant.net.tau0.1"] == pytest.approx(1 / 3)
    assert values["fau.net"] == pytest.approx(3 / 6)


# --- experience review ----------------------------------------------------------------------------------
class FakeAgent:
    """hidden_activations returns a planted critic layer whose dormant ratio / FAU the test controls."""

    def __init__(self, values):
        self.values = iter(values)

    def hidden_activations(self, batch):
        kind, v = next(self.values)
        h = torch.zeros(100, 100)
        if kind == "dormant":  # fraction v of units dead, the rest active everywhere
            h[:, round(v * 100) :] = 1.0
        else:  # FAU v: fraction v of all entries active
            h.view(-1)[: round(v * h.numel())] = 1.0
        return {"critic": [h]}


def _replay(n_added: int, capacity: int) -> ReplayBuffer:
    rb = ReplayBuffer(1, 1, capacity, CPU, seed=0)
    for i in range(n_added):
        rb.add(np.array([i], dtype=np.float32), np.zeros(1, np.float32), 0.0, np.zeros(1, np.float32), False)
    return rb


def _review(mode, **kw):
    return ExperienceReview(
        ReviewParams(mode=mode, every=kw.pop("every", 10_000), batch=8, **kw),
        t_end=100_000,
        batch_size=32,
        seed_sequence=np.random.SeedSequence(0),
        device=CPU,
    )


@pytest.mark.parametrize("wrapped", [False, True])
def test_review_draws_only_from_the_early_segment(wrapped):
    capacity = 1000
    n_added = 2500 if wrapped else 800
    rb = _replay(n_added, capacity)
    review = _review("paper", every=1, window=3)
    agent = FakeAgent([("dormant", 0.2)] * 10_000)
    fired = 0
    size = len(rb)
    oldest = n_added - size  # insertion index of the oldest stored transition
    for u in range(1, 401):
        batch = review.sample(agent, rb, u)
        if batch is not None:
            fired += 1
            values = batch.obs[:, 0]
            assert values.min() >= oldest and values.max() < oldest + int(0.3 * size)
    assert fired > 100


def test_review_fires_at_the_documented_rate():
    n = 4000
    rb = _replay(100, 100)
    # paper: a steady dormant ratio (fluctuation 0 < ε) → review with probability 0.5 per update
    review = _review("paper", every=1, window=3, prob=0.5)
    agent = FakeAgent([("dormant", 0.3)] * (n + 1))
    fired = sum(review.sample(agent, rb, u) is not None for u in range(1, n + 1))
    assert abs(fired / n - 0.5) < 4 * math.sqrt(0.25 / n)
    # paper: a fluctuating dormant ratio (∇f = 0.5 > ε) → never
    review = _review("paper", every=1, window=3)
    agent = FakeAgent([("dormant", 0.0), ("dormant", 0.5)] * n)
    assert sum(review.sample(agent, rb, u) is not None for u in range(1, n + 1)) == 0
    # code: critic FAU 0.3 < 0.4 → gate = 1/(1 + e^0.1·0.9) ≈ 0.5013, review w.p. 1 − gate
    review = _review("code", every=1)
    agent = FakeAgent([("fau", 0.3)] * (n + 1))
    fired = sum(review.sample(agent, rb, u) is not None for u in range(1, n + 1))
    p = 1 - 1 / (1 + math.exp(0.1) * 0.9)
    assert review.gate == pytest.approx(1 - p, abs=1e-3)
    assert abs(fired / n - p) < 4 * math.sqrt(p * (1 - p) / n)
    # code: FAU above awaken → never
    review = _review("code", every=1)
    agent = FakeAgent([("fau", 0.6)] * (n + 1))
    assert sum(review.sample(agent, rb, u) is not None for u in range(1, n + 1)) == 0
    assert review.log_metrics()["review.fired_frac"] == 0.0


@pytest.mark.parametrize("name", ["ne_code", "ne_no_pruning"])
def test_update_path_with_topology_updates_has_no_host_sync(name):
    """Counts are host-side, so topology updates (code pruning, or none) never read the device."""

    agent, ne, stack = build(name, hidden=32, growth={"delta": 2}, review={"enabled": False})
    batches = [random_batch(agent, seed=i) for i in range(8)]
    with forbid_host_sync():
        for i, b in enumerate(batches):
            agent.update(b)
            stack.on_update(agent, b, i)
    assert ne.growth["critic"].topology_updates == 4


@pytest.mark.parametrize("mask_gradients", [True, False])
def test_mask_gradients_keeps_inactive_adam_moments_at_zero(mask_gradients):
    agent, ne, _ = build("ne_code", hidden=32, growth={"delta": 1000}, mask_gradients=mask_gradients)
    for i in range(3):
        agent.update(random_batch(agent, seed=i))
    for role in ("critic", "actor"):  # the static actor too
        for layer in ne.topology.sparse_layers(role):
            exp_avg = agent.optimizers[role].state[layer.weight]["exp_avg"]
            inactive_moments = torch.count_nonzero(exp_avg[~layer.mask])
            assert (inactive_moments == 0) == mask_gradients
            assert torch.count_nonzero(layer.weight[~layer.mask]) == 0


def test_topology_update_that_changes_nothing_keeps_the_optimizer_step():
    """`ne_no_growth` with no dormant unit: its topology updates grow and prune nothing, so no step is lost."""
    agent, ne, stack = build("ne_no_growth", critic="td3", hidden=64, growth={"delta": 2}, review={"enabled": False})
    bias = agent.nets["critic"].q1.layers[0].bias
    masks = [layer.mask.clone() for layer in ne.topology.sparse_layers("critic")]
    for i in range(6):
        batch = random_batch(agent, seed=i)
        agent.update(batch)
        stack.on_update(agent, batch, i)
    growth = ne.growth["critic"]
    assert growth.topology_updates == 3 and not growth.last.changed
    assert all(pair == (0, 0) for pair in growth.last.layers.values())
    assert float(agent.optimizers["critic"].state[bias]["step"]) == 6
    assert all(torch.equal(m, layer.mask) for m, layer in zip(masks, ne.topology.sparse_layers("critic"), strict=True))


def test_ne_static_is_the_initial_ne_network_with_a_frozen_topology():
    ne_agent, ne, _ = build("ne", hidden=64)
    agent, static, stack = build("ne_static", hidden=64)
    # Same layout, masks and initial weights as NE's starting network (same seed), no weight decay term.
    for role in ("actor", "critic"):
        a, b = ne_agent.nets[role].state_dict(), agent.nets[role].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert static.extra_loss(agent, role) is None
    assert static.growth == {} and not static.review.enabled
    masks = {layer.key: layer.mask.clone() for layer in static.topology.all_layers() if layer.is_sparse}
    assert masks and static.layer_sparsity == ne.layer_sparsity
    bias = agent.nets["critic"].q1.layers[0].bias
    for i in range(4):
        batch = random_batch(agent, seed=i)
        agent.update(batch)
        stack.on_update(agent, batch, i)
    assert float(agent.optimizers["critic"].state[bias]["step"]) == 4
    for layer in static.topology.all_layers():
        if layer.is_sparse:
            assert torch.equal(layer.mask, masks[layer.key])
            assert torch.count_nonzero(layer.weight[~layer.mask]) == 0
