"""Sparse-training family (static, set, rigl, gmp) and the gradient-SNR metric.

Agents are driven directly with random minibatches (no environment), on small networks, so every schedule
point can be checked update by update."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from neuroplastic import metrics
from neuroplastic.agents import AGENTS
from neuroplastic.envs import EnvSpec
from neuroplastic.methods import METHODS, MethodStack, RunContext
from neuroplastic.methods.grad_snr import GradSNR
from neuroplastic.methods.sparse import cosine_fraction, polynomial_sparsity
from neuroplastic.nets import MaskedLinear
from neuroplastic.replay import ReplayBuffer
from tests.conftest import forbid_host_sync, random_batch

CPU = torch.device("cpu")


def build(name: str | None, *, agent="td3", steps=1100, start=100, obs=11, act=3, hidden=32, seed=0, **params):
    """A TD3 (or SAC) agent with method `name` (None: plain), RunContext with U = steps − start updates."""
    ctx = RunContext(seed=seed, steps=steps, start_steps=start, device=CPU)
    method = None
    if name is not None:
        cls = METHODS[name]
        method = cls(cls.Params.model_validate(params), ctx)
    stack = MethodStack([method] if method else [])
    torch.manual_seed(seed)
    agent_cls = AGENTS[agent]
    return agent_cls(agent_cls.Params(hidden=hidden), EnvSpec(obs, act, 1.0, 1000), CPU, stack, seed=seed), method


def sparse_layers(agent, role):
    return [
        (name, m) for name, m in agent.nets[role].named_modules() if isinstance(m, MaskedLinear) and m.mask is not None
    ]


def mask_snapshot(agent, role) -> dict[str, torch.Tensor]:
    return {name: m.mask.clone() for name, m in sparse_layers(agent, role)}


# --- params -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["static", "set", "rigl", "gmp"])
@pytest.mark.parametrize("sparsity", [0.4, 0.995])
def test_sparsity_outside_range_is_rejected(name, sparsity):
    with pytest.raises(ValidationError, match="sparsity"):
        METHODS[name].Params.model_validate({"sparsity": sparsity})


def test_unknown_role_names_the_role():
    with pytest.raises(ValueError, match="value"):
        build("set", nets=["critic", "value"])


def test_defaults_are_the_sac_mujoco_configs():
    dyn = METHODS["rigl"].Params()
    assert (dyn.sparsity, dyn.distribution, dyn.weight_decay, dyn.delta, dyn.drop_fraction) == (
        0.9,
        "erk",
        1e-6,
        1000,
        0.5,
    )
    assert dyn.stop_fraction == 0.8 and dyn.sparse_init and dyn.drop_schedule == "cosine"
    gmp = METHODS["gmp"].Params()
    assert (gmp.sparsity, gmp.weight_decay, gmp.delta, gmp.begin_fraction, gmp.end_fraction) == (
        0.9,
        1e-4,
        1000,
        0.2,
        0.8,
    )
    assert gmp.initial_sparsity == 0.0 and gmp.power == 3.0


# --- ERK, initial masks, sparsity-aware init ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("obs", "act", "expected"),
    [(17, 6, (0.586, 0.932, 0.0)), (376, 17, (0.909, 0.890, 0.0))],  # rigl's ERK at S=0.9 (Walker2d, Humanoid)
)
def test_erk_critic_sparsities_match_the_worked_example(obs, act, expected):
    agent, method = build("static", obs=obs, act=act, hidden=256)
    s = method.layer_sparsity["critic"]
    for head in ("q1", "q2"):
        got = [s[f"{head}.layers.{i}"] for i in range(3)]
        assert got == pytest.approx(expected, abs=1e-3)
    for name, m in agent.nets["critic"].named_modules():
        if isinstance(m, MaskedLinear) and s[name] > 0:
            n = m.weight.numel()
            assert int(m.mask.sum()) == n - math.floor(s[name] * n)
    # the 1-unit Q output stays dense (no mask), as ERK makes it in the study
    assert agent.nets["critic"].q1.layers[2].mask is None


def test_uniform_distribution_gives_equal_layer_sparsity():
    _, method = build("static", distribution="uniform", sparsity=0.8)
    values = set(round(v, 9) for v in method.layer_sparsity["actor"].values())
    assert values == {0.8}


def test_sparse_init_draws_glorot_with_sparse_fans():
    agent, _ = build("static", hidden=256, sparsity=0.9)
    layer = agent.nets["critic"].q1.layers[1]
    w, m = layer.weight.detach(), layer.mask
    fan_in = m.sum(1, keepdim=True).float()
    fan_out = m.sum(0, keepdim=True).float()
    limit = torch.sqrt(3.0 / torch.clamp((fan_in + fan_out) / 2, min=1.0))
    assert torch.all(w.abs() <= limit + 1e-7)
    assert torch.all(w[~m] == 0)
    # PyTorch's default bound would be 1/√256; the sparse fans allow much larger weights, and they are used
    assert w.abs().max() > 2.0 / math.sqrt(256)
    # uniform on (−a, a): E|w|/a = 1/2
    ratio = (w.abs() / limit)[m].mean()
    assert 0.45 < float(ratio) < 0.55
    agent_off, _ = build("static", hidden=256, sparsity=0.9, sparse_init=False)
    assert agent_off.nets["critic"].q1.layers[1].weight.abs().max() <= 1 / math.sqrt(256) + 1e-7


def test_masks_and_init_come_from_the_seed_not_the_global_rng():
    a, _ = build("set", seed=3)
    b, _ = build("set", seed=3)
    c, _ = build("set", seed=4)
    ma, mb, mc = (mask_snapshot(x, "critic") for x in (a, b, c))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert not all(torch.equal(ma[k], mc[k]) for k in ma)


# --- static ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("agent_name", ["td3", "sac"])
def test_static_never_changes_its_mask_and_targets_follow_it(agent_name):
    agent, method = build("static", agent=agent_name)
    before = {r: mask_snapshot(agent, r) for r in ("actor", "critic")}
    for u in range(40):
        agent.update(random_batch(agent, 32, seed=u))
    for role in ("actor", "critic"):
        after = mask_snapshot(agent, role)
        assert before[role].keys() == after.keys() and before[role]
        assert all(torch.equal(before[role][k], after[k]) for k in after)
        if role not in agent.targets:  # SAC has no actor target
            continue
        target = dict(agent.targets[role].named_modules())
        for name, m in sparse_layers(agent, role):
            assert torch.all(m.weight[~m.mask] == 0)
            assert torch.all(target[name].weight[~m.mask] == 0)
            assert target[name].weight[m.mask].abs().sum() > 0
    assert method.log_metrics(agent, None, 0) == {}


# --- SET / RigL: constant density, schedule, stop ------------------------------------------------------------
@pytest.mark.parametrize("agent_name", ["td3", "sac"])
@pytest.mark.parametrize("name", ["set", "rigl"])
def test_density_is_exactly_constant_and_updates_stop_at_the_stop_fraction(name, agent_name):
    # U = 100 updates, ΔT = 10, stop at 50% → mask updates at t = 0, 10, …, 50 (t = update − 1)
    agent, method = build(name, agent=agent_name, steps=200, start=100, delta=10, stop_fraction=0.5, drop_fraction=0.3)
    assert method.points == [0, 10, 20, 30, 40, 50]
    counts0 = {r: {k: int(v.sum()) for k, v in mask_snapshot(agent, r).items()} for r in ("actor", "critic")}
    changed_at = {"actor": [], "critic": []}
    for u in range(1, 101):
        before = {r: mask_snapshot(agent, r) for r in ("actor", "critic")}
        agent.update(random_batch(agent, 32, seed=u))
        for role in ("actor", "critic"):
            after = mask_snapshot(agent, role)
            assert {k: int(v.sum()) for k, v in after.items()} == counts0[role]
            if any(not torch.equal(before[role][k], after[k]) for k in after):
                changed_at[role].append(u)
            target = dict(agent.targets[role].named_modules()) if role in agent.targets else {}
            for lname, m in sparse_layers(agent, role):
                assert torch.all(m.weight[~m.mask] == 0)
                if target:
                    assert torch.all(target[lname].weight[~m.mask] == 0)
    # the critic steps every update: exactly at t = 0, 10, …, 40 (f(50) = 0 under the cosine decay)
    assert changed_at["critic"] == [1, 11, 21, 31, 41]
    # TD3's actor steps on even updates: its first step at or after each point; SAC's steps every update
    assert changed_at["actor"] == ([2, 12, 22, 32, 42] if agent_name == "td3" else [1, 11, 21, 31, 41])
    assert method.mask_updates == {"actor": 6, "critic": 6}
    logged = method.log_metrics(agent, None, 0)
    assert logged["topology.updates.critic"] == 6.0
    assert logged["topology.drop_fraction.critic"] == pytest.approx(0.0, abs=1e-12)
    assert logged["topology.pruned.critic"] == logged["topology.grown.critic"] > 0


def test_drop_fraction_follows_the_cosine_decay():
    _, method = build("set", steps=1100, start=100)  # U = 1000, T_stop = 800
    assert method.stop_update == 800 and method.points == [0]
    assert method.drop_fraction(0) == 0.5
    assert method.drop_fraction(400) == pytest.approx(0.25)
    assert method.drop_fraction(800) == pytest.approx(0.0, abs=1e-12)
    assert cosine_fraction(0.5, 200, 800) == pytest.approx(0.25 * (1 + math.cos(math.pi / 4)))


@pytest.mark.parametrize("name", ["set", "rigl"])
def test_mask_update_drops_smallest_and_zeroes_new_connections(name):
    agent, method = build(name, delta=1000)
    agent.update(random_batch(agent, 32, seed=99))  # fills Adam's state (and serves the t = 0 mask update)
    layer = agent.nets["critic"].q1.layers[1]
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * layer.mask)
    layer.weight.grad = torch.randn(layer.weight.shape, generator=g)
    opt = agent.optimizers["critic"]
    opt.state[layer.weight]["exp_avg"].fill_(1.0)
    opt.state[layer.weight]["exp_avg_sq"].fill_(1.0)
    mask0, w0 = layer.mask.clone(), layer.weight.detach().clone()
    n = int(mask0.sum())
    method.drop_fraction = lambda t: 0.5  # isolate the update rule from the schedule
    method.update_masks(agent, "critic", 7)
    k = n // 2
    mask1 = layer.mask
    assert int(mask1.sum()) == n
    # removed = the k active entries of smallest |w| (random normal weights: no ties)
    removed = torch.zeros(mask0.numel(), dtype=torch.bool)
    removed[w0.abs().flatten().masked_fill(~mask0.flatten(), math.inf).topk(k, largest=False).indices] = True
    removed = removed.view_as(mask0)
    kept = mask0 & ~removed
    grown = mask1 & ~kept
    assert int(grown.sum()) == k and torch.equal(mask1, kept | grown)
    new, regrown = grown & ~mask0, grown & removed
    assert int(new.sum()) > 0
    assert torch.all(layer.weight[new] == 0)
    assert torch.all(layer.weight[removed & ~grown] == 0)
    assert torch.equal(layer.weight[kept | regrown], w0[kept | regrown])  # regrown just-dropped keep their value
    state = opt.state[layer.weight]
    assert torch.all(state["exp_avg"][new] == 0) and torch.all(state["exp_avg_sq"][new] == 0)
    assert torch.all(state["exp_avg"][kept | regrown] == 1)
    top = torch.zeros(mask0.numel(), dtype=torch.bool)
    top[layer.weight.grad.abs().flatten().masked_fill(kept.flatten(), -1.0).topk(k).indices] = True
    if name == "rigl":
        assert torch.equal(grown.flatten(), top)
    else:  # random regrowth: not the largest gradients
        assert not torch.equal(grown.flatten(), top)


@pytest.mark.parametrize("name", ["set", "gmp"])
def test_resumes_exactly_from_its_state(name):
    """Method state (generator, cursor, counts) round-trips: a restored run continues bit-identically."""
    agent, method = build(name, steps=130, start=100, delta=5)
    for u in range(1, 13):
        agent.update(random_batch(agent, 32, seed=u))
    state_agent, state_method = copy.deepcopy(agent.state_dict()), copy.deepcopy(method.state_dict())
    torch_rng = torch.get_rng_state()
    for u in range(13, 31):
        agent.update(random_batch(agent, 32, seed=u))
    ref = {k: v.clone() for k, v in agent.nets["critic"].state_dict().items() if v is not None}

    agent2, method2 = build(name, steps=130, start=100, delta=5)
    agent2.load_state_dict(state_agent)
    method2.load_state_dict(state_method)
    torch.set_rng_state(torch_rng)
    for u in range(13, 31):
        agent2.update(random_batch(agent2, 32, seed=u))
    got = agent2.nets["critic"].state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert any(k.endswith("mask") for k in ref)  # masks are part of what is compared
    assert method2.mask_updates == method.mask_updates


@pytest.mark.parametrize("agent_name", ["td3", "sac"])
@pytest.mark.parametrize(("name", "params"), [("set", {}), ("rigl", {}), ("static", {}), ("gmp", {"delta": 2})])
def test_mask_updates_have_no_host_sync(name, params, agent_name):

    # U = 10: SET/RigL update at t = 0 (and ΔT = 1000 never again); GMP prunes at t = 2, 4, …, 8
    agent, method = build(name, agent=agent_name, steps=110, start=100, **params)
    batches = [random_batch(agent, 32, seed=u) for u in range(10)]
    with forbid_host_sync():
        for b in batches:
            agent.update(b)
    assert sum(method.mask_updates.values()) == (0 if name == "static" else 2 if name != "gmp" else 8)


# --- GMP ----------------------------------------------------------------------------------------------------
def test_gmp_hits_the_scheduled_sparsity_at_the_scheduled_steps():
    # U = 100: t0 = 20, t_end = 80, ΔT = 15 → prunes at t = 20, 35, 50, 65, 80 (t_end added)
    agent, method = build("gmp", steps=200, start=100, delta=15, sparsity=0.9, weight_decay=0.0)
    assert method.points == [20, 35, 50, 65, 80]
    layers = {name: m for name, m in agent.nets["critic"].named_modules() if isinstance(m, MaskedLinear)}
    finals = method.layer_sparsity["critic"]
    assert finals["q1.layers.2"] == 0.0 and finals["q1.layers.1"] > 0.9

    def expected_active(name, t):
        n = layers[name].weight.numel()
        s_f = finals[name]
        s = s_f + (0.0 - s_f) * (1 - (t - 20) / 60) ** 3
        return n - math.floor(s * n)

    for u in range(1, 101):
        agent.update(random_batch(agent, 32, seed=u))
        t = u - 1
        for name, m in layers.items():
            n = m.weight.numel()
            active = n if m.mask is None else int(m.mask.sum())
            if finals[name] == 0.0 or t < 35:
                assert m.mask is None, (name, u)  # dense until the first pruning that removes something
            else:
                last = max(p for p in method.points if p <= t)
                assert active == expected_active(name, last), (name, t)
                assert torch.all(m.weight[~m.mask] == 0)
    for name, m in layers.items():
        if finals[name] > 0:
            n = m.weight.numel()
            assert n - int(m.mask.sum()) == math.floor(finals[name] * n)
    # network-wide: the ERK finals give the global sparsity
    total = sum(m.weight.numel() for m in layers.values())
    zeros = sum(int((~m.mask).sum()) for m in layers.values() if m.mask is not None)
    assert zeros / total == pytest.approx(0.9, abs=2e-3)
    assert polynomial_sparsity(0.0, 0.9, 50, 20, 80, 3) == pytest.approx(0.9 - 0.9 * 0.5**3)


@pytest.mark.parametrize("agent_name", ["td3", "sac"])
def test_gmp_is_bit_identical_to_the_plain_agent_before_pruning_starts(agent_name):
    # t0 = 20 prunes nothing (s = 0); the first pruning is at t = 30 (update 31)
    plain, _ = build(None, agent=agent_name, steps=200, start=100)
    gmp, method = build("gmp", agent=agent_name, steps=200, start=100, delta=10, weight_decay=0.0)
    assert method.points[:2] == [20, 30]
    for u in range(1, 33):
        b = random_batch(plain, 32, seed=u)
        rng = torch.get_rng_state()  # both updates draw the same target-smoothing noise
        plain.update(b)
        torch.set_rng_state(rng)
        gmp.update(b)
        same = all(
            torch.equal(a, c)
            for role in ("actor", "critic")
            for a, c in zip(plain.nets[role].parameters(), gmp.nets[role].parameters(), strict=True)
        )
        same_targets = all(
            torch.equal(a, c)
            for role in plain.targets
            for a, c in zip(plain.targets[role].parameters(), gmp.targets[role].parameters(), strict=True)
        )
        if u <= 30:
            assert same and same_targets, u
            assert torch.equal(plain.log_values()["critic_loss"], gmp.log_values()["critic_loss"])
        else:
            assert not same, u


def test_gmp_default_weight_decay_changes_the_run():
    plain, _ = build(None, steps=200, start=100)
    gmp, _ = build("gmp", steps=200, start=100)
    b = random_batch(plain, 32)
    rng = torch.get_rng_state()
    plain.update(b)
    torch.set_rng_state(rng)
    gmp.update(b)
    assert not torch.equal(plain.nets["critic"].q1.layers[0].weight, gmp.nets["critic"].q1.layers[0].weight)


# --- weight decay ---------------------------------------------------------------------------------------------
def test_weight_decay_is_l2_on_the_kernels_of_the_sparse_roles():
    agent, method = build("static", weight_decay=1e-3, nets="critic")
    kernels = [m.weight for m in agent.nets["critic"].modules() if isinstance(m, MaskedLinear)]
    expected = 1e-3 * sum(float((w.detach() ** 2).sum()) for w in kernels)
    assert float(method.extra_loss(agent, "critic").detach()) == pytest.approx(expected, rel=1e-6)
    assert method.extra_loss(agent, "actor") is None
    assert agent.nets["actor"].net.layers[0].mask is None  # only the listed roles are sparse
    _, off = build("static", weight_decay=0.0)
    assert off.extra_loss(agent, "critic") is None


# --- gradient SNR ----------------------------------------------------------------------------------------------
def test_gradient_snr_equals_the_hand_computed_value_on_a_linear_model():
    torch.manual_seed(0)
    model = MaskedLinear(3, 1)
    x = torch.randn(7, 3)
    y = torch.randn(7, 1)

    def loss(forward, xi, yi):
        return (forward(xi) - yi).pow(2).sum()

    snr = metrics.per_sample_gradient_snr(model, loss, (x, y), chunk=3)
    w = model.weight.detach().numpy().astype(np.float64)[0]
    b = float(model.bias.detach()[0])
    xs, ys = x.numpy().astype(np.float64), y.numpy().astype(np.float64)[:, 0]
    residual = xs @ w + b - ys
    per_sample = np.concatenate([2 * residual[:, None] * xs, 2 * residual[:, None]], axis=1)  # (7, 4): w1..w3, b
    hand = np.abs(per_sample.mean(0)) / (per_sample.std(0) + 1e-10)
    assert snr["weight"].numpy()[0] == pytest.approx(hand[:3], rel=1e-6)
    assert float(snr["bias"][0]) == pytest.approx(hand[3], rel=1e-6)
    assert float(metrics.mean_snr(snr, {})) == pytest.approx(hand.mean(), rel=1e-6)
    # a masked entry is left out (active) or counts as 0 (all)
    mask = torch.tensor([[True, False, True]])
    assert float(metrics.mean_snr(snr, {"weight": mask}, "active")) == pytest.approx(hand[[0, 2, 3]].mean(), rel=1e-6)
    assert float(metrics.mean_snr(snr, {"weight": mask}, "all")) == pytest.approx(hand[[0, 2, 3]].sum() / 4, rel=1e-6)


@pytest.mark.parametrize("agent_name", ["td3", "sac"])
def test_grad_snr_method_logs_without_touching_training_streams(agent_name):
    agent, _ = build("rigl", agent=agent_name)
    agent.update(random_batch(agent, 32))
    replay = ReplayBuffer(agent.env.obs_dim, agent.env.act_dim, 500, CPU, seed=0)
    b = random_batch(agent, n=300, seed=1)
    for i in range(300):
        replay.add(b.obs[i].numpy(), b.action[i].numpy(), float(b.reward[i]), b.next_obs[i].numpy(), False)
    snr = GradSNR(GradSNR.Params(batch_size=64), RunContext(seed=0, steps=1000, start_steps=100, device=CPU))
    snr.on_build(agent)
    rng, replay_rng = torch.get_rng_state(), replay.generator.get_state()
    critic_before = [p.clone() for p in agent.nets["critic"].parameters()]
    first = snr.log_metrics(agent, replay, 100)["grad_snr.critic"]
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(replay.generator.get_state(), replay_rng)
    assert all(torch.equal(a, c) for a, c in zip(critic_before, agent.nets["critic"].parameters(), strict=True))
    assert math.isfinite(first) and first > 0
    # "all" averages masked entries in as zeros: smaller than the active-only mean on a 90%-sparse critic
    snr.generator.manual_seed(7)
    active = float(snr.measure(agent, replay))
    snr_all = GradSNR(GradSNR.Params(batch_size=64, entries="all"), snr.ctx)
    snr_all.generator.manual_seed(7)
    assert float(snr_all.measure(agent, replay)) < active


def test_sum_of_squares_matches_the_pow_form_with_bit_identical_gradients():
    from neuroplastic.nets import sum_of_squares

    g = torch.Generator().manual_seed(3)
    ws = [torch.randn(s, generator=g, requires_grad=True) for s in [(8, 4, 3, 3), (16, 72), (5,)]]
    fast = 1e-4 * sum_of_squares(ws)
    fast.backward()
    fast_grads = [w.grad.clone() for w in ws]
    for w in ws:
        w.grad = None
    reference = 1e-4 * torch.stack([w.pow(2).sum() for w in ws]).sum()
    reference.backward()
    assert fast.item() == pytest.approx(reference.item(), rel=1e-6)
    assert all(torch.equal(a, w.grad) for a, w in zip(fast_grads, ws, strict=True))
