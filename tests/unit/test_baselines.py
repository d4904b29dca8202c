"""Plasticity baselines: each acts exactly as specified and leaves the run untouched before it first acts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neuroplastic import config, loop, runs
from neuroplastic.methods import METHODS
from neuroplastic.methods._common import fresh_net, seed_for
from neuroplastic.methods.injection import InjectedMLP
from tests.conftest import (
    advance,
    build_run,
    equal_states,
    forbid_host_sync,
    full_state,
    snapshot,
    the_method,
    tiny_config,
)

START = 100


def test_every_baseline_is_registered_and_accepted_by_the_config():
    for name in ("reset", "redo", "plasticity_injection", "layernorm", "nap", "crelu", "l2_init", "shrink_perturb"):
        assert name in METHODS
        for agent in ("td3", "sac"):
            cfg = runs.resolve(tiny_config(agent=agent, method=name))
            assert cfg.method[0]["name"] == name
    with pytest.raises(config.ConfigError, match=r"method\[0\]\.tau"):
        runs.resolve(tiny_config(method={"name": "redo", "tau": -1}))
    with pytest.raises(config.ConfigError, match=r"method\[0\]\.bogus: unknown key"):
        runs.resolve(tiny_config(method={"name": "reset", "bogus": 1}))


# --- bit-identical to the plain agent before the first action --------------------------------------------------
FIRST_ACTION = {
    "reset": ({"name": "reset", "interval": 150}, 150),
    "plasticity_injection": ({"name": "plasticity_injection", "at_step": 150}, 150),
    "shrink_perturb": ({"name": "shrink_perturb", "interval": 150}, 150),
    # first recycle after gradient step 50 = env step START + 50; τ = 0.9 so that it surely recycles something
    "redo": ({"name": "redo", "interval": 50, "tau": 0.9}, START + 50),
}


@pytest.mark.parametrize("agent", ["td3", "sac"])
@pytest.mark.parametrize("method", sorted(FIRST_ACTION))
def test_run_equals_plain_agent_until_the_method_first_acts(agent, method):
    entry, first = FIRST_ACTION[method]
    plain, plain_state = build_run(agent=agent, start_steps=START, steps=400)
    run, run_state = build_run(entry, agent=agent, start_steps=START, steps=400)
    advance(plain, plain_state, first - 1)
    advance(run, run_state, first - 1)
    assert equal_states(full_state(plain), full_state(run)) == []
    advance(plain, plain_state, first + 2)
    advance(run, run_state, first + 2)
    differs = equal_states(full_state(plain)["agent"]["nets"], full_state(run)["agent"]["nets"])
    assert differs, f"{method} did not change the networks at step {first}"


# --- Reset ---------------------------------------------------------------------------------------------------------
def _params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


@pytest.mark.parametrize("agent", ["td3", "sac"])
def test_reset_reinitialises_syncs_targets_keeps_buffer_and_global_rng(agent):
    run, st = build_run({"name": "reset", "interval": 1000}, agent=agent, start_steps=START, steps=2000)
    advance(run, st, START + 40)
    a = run.agent
    initial = {role: _params(net) for role, net in build_run(agent=agent)[0].agent.nets.items()}
    before = {role: _params(net) for role, net in a.nets.items()}
    replay_before = run.replay.state_dict()
    rng_before = torch.get_rng_state()
    assert all(len(opt.state) > 0 for opt in a.optimizers.values())

    the_method(run).reset(a, number=1)

    assert torch.equal(torch.get_rng_state(), rng_before), "reset consumed the global torch RNG"
    assert equal_states(run.replay.state_dict(), replay_before) == []
    for role, net in a.nets.items():
        now = _params(net)
        assert set(now) == set(initial[role])
        for name, value in now.items():
            if value.numel() > 1:  # every weight matrix / bias vector is redrawn, not restored to the initial one
                assert not torch.equal(value, before[role][name]), f"{role}.{name} not reset"
                assert not torch.equal(value, initial[role][name]), f"{role}.{name} reused the initial seed"
        if role in a.targets:
            assert equal_states(snapshot(a.targets[role]), snapshot(net)) == [], "targets != new online weights"
        assert len(a.optimizers[role].state) == 0, "optimizer state survived the reset"
    if agent == "sac":
        assert a.nets["temperature"].log_alpha.item() == pytest.approx(math.log(a.params.init_temperature))
    # two resets draw different weights
    first = _params(a.nets["critic"])
    the_method(run).reset(a, number=2)
    assert not torch.equal(first["q1.layers.0.weight"], a.nets["critic"].q1.layers[0].weight)


def test_reset_last_layers_and_kept_optimizer_state():
    run, st = build_run(
        {"name": "reset", "interval": 1000, "last_layers": 1, "reset_optimizer": False}, start_steps=START, steps=2000
    )
    advance(run, st, START + 40)
    a = run.agent
    before, target_before = _params(a.nets["critic"]), _params(a.targets["critic"])
    opt_state = {k: {n: t.clone() for n, t in v.items()} for k, v in a.optimizers["critic"].state.items()}
    the_method(run).reset(a, number=1)
    after, target_after = _params(a.nets["critic"]), _params(a.targets["critic"])
    for name in after:
        if ".layers.2." in name:  # the output layer of each Q-head
            assert not torch.equal(after[name], before[name])
            assert torch.equal(target_after[name], after[name])
        else:
            assert torch.equal(after[name], before[name])
            assert torch.equal(target_after[name], target_before[name])
    for param, state in a.optimizers["critic"].state.items():
        assert torch.equal(state["exp_avg"], opt_state[param]["exp_avg"])


def test_reset_schedule_counts_env_steps():
    run, _ = build_run({"name": "reset", "interval": 120, "max_resets": 2}, start_steps=START, steps=400)
    method, calls, now = the_method(run), [], [0]
    method.reset = lambda agent, number: calls.append((now[0], number))
    for t in range(1, 401):
        now[0] = t
        method.on_step(run.agent, t)
    assert calls == [(120, 1), (240, 2)]


# --- ReDo ----------------------------------------------------------------------------------------------------------
def _adam(agent, role, param):
    return {k: v.clone() for k, v in agent.optimizers[role].state[param].items()}


def _expected_dormant(mlp, x, tau=0.1):
    """The test's own τ-dormant computation: mean |activation| per unit over the batch, over the layer mean."""
    masks = []
    for layer, norm in zip(mlp.layers[:-1], mlp.norms, strict=True):
        x = mlp.act(norm(layer(x)))
        h = x.abs()
        if mlp.spec.activation == "crelu":
            h = h[:, : layer.out_features] + h[:, layer.out_features :]
        score = h.mean(0)
        masks.append(score / (score.mean() + 1e-9) <= tau)
    return masks


def _mlps_with_inputs(agent, batch):
    sa = torch.cat((batch.obs, batch.action), -1)
    critic = agent.nets["critic"]
    return {
        "actor": [("net.", agent.nets["actor"].net, batch.obs)],
        "critic": [("q1.", critic.q1, sa), ("q2.", critic.q2, sa)],
    }


def _plant_and_recycle(methods, plant, planted):
    """Train briefly, plant dormant units, recycle once. `planted`: (role, mlp prefix, layer, [units])."""
    run, st = build_run(methods, start_steps=START, steps=2000)
    advance(run, st, START + 30)  # 30 critic and 15 actor Adam steps: moments are populated
    a = run.agent
    g = torch.Generator().manual_seed(1)
    batch = run.replay.sample(64)
    # Gaussian states reach every first-layer unit; the replay's few states leave many units dead.
    batch = type(batch)(torch.randn(batch.obs.shape, generator=g) * 3, *batch[1:])
    with torch.no_grad():
        before_plant = {
            (role, prefix): _expected_dormant(m, x)
            for role, ms in _mlps_with_inputs(a, batch).items()
            for prefix, m, x in ms
        }
        for role, prefix, layer, units in planted:
            assert not before_plant[(role, prefix)][layer][units].any(), "a planted unit was dormant already"
        plant(a)
        expected = {
            (role, prefix): _expected_dormant(m, x)
            for role, ms in _mlps_with_inputs(a, batch).items()
            for prefix, m, x in ms
        }
    for role, prefix, layer, units in planted:
        assert expected[(role, prefix)][layer][units].all()
    nets_before = {r: _params(n) for r, n in a.nets.items()}
    targets_before = {r: _params(n) for r, n in a.targets.items()}
    adam_before = {
        r: {n: _adam(a, r, p) for n, p in net.named_parameters() if p in a.optimizers[r].state}
        for r, net in a.nets.items()
    }
    dormant = the_method(run).recycle(a, batch, number=1)
    for role in ("actor", "critic"):
        got = [d.tolist() for d in dormant[role]]
        want = [d.tolist() for (r, _), ds in expected.items() if r == role for d in ds]
        assert got == want, f"{role}: recycled units differ from the dormant ones"
    assert equal_states({r: _params(n) for r, n in a.targets.items()}, targets_before) == [], "targets touched"
    _expect_only(a, nets_before, adam_before, _changed_entries(a, expected))
    return a, expected


def _changed_entries(a, expected):
    """Which entries recycling may change: rows/bias/norm entries of dormant units, their outgoing columns."""
    out = {}
    for (role, prefix), masks in expected.items():
        mlp = a.nets[role].get_submodule(prefix.rstrip("."))
        for i, dead in enumerate(masks):

            def flag(name, mask, role=role, prefix=prefix):
                key = (role, prefix + name)
                out[key] = out[key] | mask if key in out else mask

            flag(f"layers.{i}.weight", dead[:, None].expand_as(mlp.layers[i].weight))
            flag(f"layers.{i}.bias", dead)
            flag(f"norms.{i}.weight", dead)
            flag(f"norms.{i}.bias", dead)
            cols = torch.cat((dead, dead)) if mlp.spec.activation == "crelu" else dead
            flag(f"layers.{i + 1}.weight", cols[None, :].expand_as(mlp.layers[i + 1].weight))
    return out


def _expect_only(a, nets_before, adam_before, changed):
    """Every parameter and Adam moment equals its old value except the entries flagged in `changed`; flagged
    weight entries are recycled (incoming: fresh, outgoing: 0) and their Adam moments are 0."""
    for role, net in a.nets.items():
        for name, value in net.named_parameters():
            flag = changed.get((role, name), torch.zeros_like(value, dtype=torch.bool))
            old = nets_before[role][name]
            assert torch.equal(value[~flag], old[~flag]), f"{role}.{name} changed outside the recycled units"
            if name in adam_before[role]:
                state = a.optimizers[role].state[value]
                for key in ("exp_avg", "exp_avg_sq"):
                    moment, old_moment = state[key], adam_before[role][name][key]
                    if name.endswith("weight") or ".norms." in name:
                        assert (moment[flag] == 0).all(), f"{role}.{name} {key} not zeroed"
                        assert torch.equal(moment[~flag], old_moment[~flag])
                    else:  # linear-layer bias moments are kept (official code)
                        assert torch.equal(moment, old_moment)


def test_redo_recycles_exactly_the_dormant_units():
    units_a, unit_c = [3, 7], 5

    def plant(a):
        layer = a.nets["actor"].net.layers[0]
        layer.weight[units_a] = 0.0
        layer.bias[units_a] = -1.0
        layer = a.nets["critic"].q2.layers[1]
        layer.weight[unit_c] = 0.0
        layer.bias[unit_c] = -1.0

    a, _ = _plant_and_recycle({"name": "redo"}, plant, [("actor", "net.", 0, units_a), ("critic", "q2.", 1, [unit_c])])
    actor = a.nets["actor"].net
    new_rows = actor.layers[0].weight[units_a]
    bound = 1 / math.sqrt(actor.layers[0].in_features)  # PyTorch Linear init: U(±1/√fan_in)
    assert (new_rows != 0).all() and (new_rows.abs() <= bound).all(), "incoming weights not re-initialised"
    assert (actor.layers[0].bias[units_a] == 0).all()
    assert (actor.layers[1].weight[:, units_a] == 0).all(), "outgoing weights not zeroed"
    q2 = a.nets["critic"].q2
    assert (q2.layers[2].weight[:, unit_c] == 0).all() and (q2.layers[1].bias[unit_c] == 0).all()
    assert q2.layers[2].weight.shape[0] == 1  # the output layer itself is never recycled


def test_redo_with_layernorm_resets_the_unit_norm_entries():
    unit = 4

    def plant(a):
        norm = a.nets["actor"].net.norms[0]
        norm.weight[unit] = 0.0  # post-LN value = offset = −1 for every input: dead after the ReLU
        norm.bias[unit] = -1.0

    a, _ = _plant_and_recycle([{"name": "redo"}, {"name": "layernorm"}], plant, [("actor", "net.", 0, [unit])])
    actor = a.nets["actor"].net
    assert actor.norms[0].weight[unit] == 1 and actor.norms[0].bias[unit] == 0
    state = a.optimizers["actor"].state
    assert state[actor.norms[0].weight]["exp_avg"][unit] == 0 and state[actor.norms[0].bias]["exp_avg_sq"][unit] == 0


def test_redo_with_crelu_zeroes_both_outgoing_columns():
    unit, hidden = 6, 32

    def plant(a):
        layer = a.nets["critic"].q1.layers[0]
        layer.weight[unit] = 0.0  # pre-activation 0: both CReLU halves are 0
        layer.bias[unit] = 0.0

    a, _ = _plant_and_recycle(
        [{"name": "redo"}, {"name": "crelu", "nets": "both"}], plant, [("critic", "q1.", 0, [unit])]
    )
    q1 = a.nets["critic"].q1
    assert q1.layers[1].in_features == 2 * hidden
    assert (q1.layers[1].weight[:, [unit, hidden + unit]] == 0).all()
    assert (q1.layers[0].weight[unit] != 0).all()


def test_redo_schedule_counts_gradient_steps_and_respects_the_window():
    run, st = build_run({"name": "redo", "interval": 10, "start_update": 20, "end_update": 45}, start_steps=START)
    numbers = []
    the_method(run).recycle = lambda agent, batch, number: numbers.append((agent.updates, number))
    advance(run, st, START + 60)
    assert numbers == [(20, 2), (30, 3), (40, 4)]


def test_redo_rejects_a_score_batch_larger_than_the_training_batch():
    with pytest.raises(ValueError, match=r"redo\.score_batch=128"):
        build_run({"name": "redo", "score_batch": 128})


# --- Plasticity Injection --------------------------------------------------------------------------------------
def _trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("agent", ["td3", "sac"])
@pytest.mark.parametrize("encoder_layers", [1, 0])
def test_injection_keeps_outputs_and_trainable_count_and_routes_gradients(agent, encoder_layers):
    run, st = build_run(
        {"name": "plasticity_injection", "at_step": 10_000, "encoder_layers": encoder_layers},
        agent=agent,
        start_steps=START,
        steps=20_000,
    )
    advance(run, st, START + 20)
    a = run.agent
    batch = run.replay.sample(64)
    obs, act = batch.obs, batch.action
    actor_out = a.nets["actor"].net(obs)
    critic_out = a.nets["critic"](obs, act)
    target_out = a.targets["critic"](obs, act)
    counts = {r: _trainable(a.nets[r]) for r in ("actor", "critic")}
    encoder_state = {
        n: {k: v.clone() for k, v in a.optimizers["critic"].state[p].items()}
        for n, p in a.nets["critic"].named_parameters()
        if n.startswith("q1.layers.0.")
    }
    rng = torch.get_rng_state()

    the_method(run).inject(a)

    assert torch.equal(torch.get_rng_state(), rng)
    assert isinstance(a.nets["critic"].q1, InjectedMLP) and isinstance(a.targets["critic"].q2, InjectedMLP)
    assert torch.equal(a.nets["actor"].net(obs), actor_out)
    for x, y in zip(a.nets["critic"](obs, act), critic_out, strict=True):
        assert torch.equal(x, y)
    for x, y in zip(a.targets["critic"](obs, act), target_out, strict=True):
        assert torch.equal(x, y)
    for role in ("actor", "critic"):
        net = a.nets[role]
        assert _trainable(net) == counts[role]
        trainable = {id(p) for p in net.parameters() if p.requires_grad}
        assert {id(p) for g in a.optimizers[role].param_groups for p in g["params"]} == trainable
    # the encoder keeps its Adam state; the new head starts empty
    for n, p in a.nets["critic"].named_parameters():
        if n.startswith("q1.base.layers.0.") and encoder_layers == 1:
            saved = encoder_state[n.replace("base.", "")]
            assert torch.equal(a.optimizers["critic"].state[p]["exp_avg"], saved["exp_avg"])
        if ".new_" in n:
            assert p not in a.optimizers["critic"].state

    critic = a.nets["critic"]
    for p in critic.parameters():
        if p.requires_grad:
            p.grad = None
    q1, q2 = critic(obs, act)
    (q1.square().mean() + q2.square().mean()).backward()
    for name, p in critic.named_parameters():
        is_encoder = name.split(".")[1:3] in (["base", "layers"], ["base", "norms"]) and int(name.split(".")[3]) < (
            encoder_layers
        )
        if ".new_" in name or is_encoder:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_injection_trains_only_the_new_head_and_encoder():
    run, st = build_run({"name": "plasticity_injection", "at_step": START + 20}, start_steps=START, steps=2000)
    advance(run, st, START + 20)  # injected at the start of this step, then one update
    a = run.agent
    frozen = {n: p.detach().clone() for n, p in a.nets["critic"].named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in a.nets["critic"].named_parameters() if p.requires_grad}
    assert any(".base.layers.2." in n for n in frozen) and any(".frozen_layers." in n for n in frozen)
    advance(run, st, START + 40)
    now = dict(a.nets["critic"].named_parameters())
    assert all(torch.equal(now[n], v) for n, v in frozen.items())
    assert all(not torch.equal(now[n], v) for n, v in trainable.items())
    # target: frozen copy equals the online frozen copy; the tracked copy moved towards the new head
    target = dict(a.targets["critic"].named_parameters())
    for n in now:
        if ".frozen_" in n:
            assert torch.equal(target[n], now[n])


def test_injection_default_step_is_half_the_run():
    run, _ = build_run({"name": "plasticity_injection"}, steps=800)
    assert the_method(run).at == 400


# --- LayerNorm, NaP, CReLU -----------------------------------------------------------------------------------
def _norm_layers(mlp):
    return [i for i, n in enumerate(mlp.norms) if isinstance(n, nn.LayerNorm)]


def test_layernorm_placements():
    run, _ = build_run({"name": "layernorm"})
    assert _norm_layers(run.agent.nets["actor"].net) == [0, 1]
    assert _norm_layers(run.agent.nets["critic"].q2) == [0, 1]
    run, _ = build_run({"name": "layernorm", "nets": "critic"})
    assert _norm_layers(run.agent.nets["actor"].net) == []
    assert _norm_layers(run.agent.nets["critic"].q1) == [0, 1]
    cfg = tiny_config(
        agent={"name": "td3", "hidden": 32, "critic": "ne"},
        method={"name": "layernorm", "nets": "critic", "only_layer": 2},
    )
    ne = loop.build(runs.resolve(cfg), torch.device("cpu"))
    assert _norm_layers(ne.agent.nets["critic"].q1) == [2]  # the NE repository's placement
    assert _norm_layers(ne.agent.nets["actor"].net) == []
    with pytest.raises(ValueError, match=r"layernorm\.only_layer=2"):
        build_run({"name": "layernorm", "only_layer": 2})
    run, _ = build_run({"name": "layernorm", "only_layer": -1, "affine": False})
    assert _norm_layers(run.agent.nets["actor"].net) == [1]
    assert run.agent.nets["actor"].net.norms[1].weight is None


@pytest.mark.parametrize("agent", ["td3", "sac"])
def test_nap_keeps_weight_norms_at_their_initial_values_and_decays_lr(agent):
    run, st = build_run({"name": "nap"}, agent=agent, start_steps=START, steps=START + 40)
    a = run.agent
    hidden_weights = [
        layer.weight
        for role in ("actor", "critic")
        for m in a.nets[role].modules()
        if hasattr(m, "norms")
        for layer in m.layers[:-1]
    ]
    output_weights = [
        m.layers[-1].weight for role in ("actor", "critic") for m in a.nets[role].modules() if hasattr(m, "norms")
    ]
    rho = [w.detach().norm().clone() for w in hidden_weights]
    out0 = [w.detach().clone() for w in output_weights]
    assert all(_norm_layers(m) == [0, 1] for m in a.nets["critic"].modules() if hasattr(m, "norms"))
    assert a.nets["critic"].q1.norms[0].weight is None  # no affine parameters by default
    for t in range(1, START + 40 + 1):
        advance(run, st, t)
        for w, r in zip(hidden_weights, rho, strict=True):
            torch.testing.assert_close(w.detach().norm(), r, rtol=1e-6, atol=0)
    assert any(not torch.equal(w, w0) for w, w0 in zip(output_weights, out0, strict=True)), "weights never moved"
    # linear decay 3e-4 → 3e-5 over (steps − start_steps) = 40 updates; lr of update u is set before it
    lr0 = a.params.lr
    expected = lr0 * (1 - 0.9 * (40 - 1) / 40)
    assert a.optimizers["critic"].param_groups[0]["lr"] == pytest.approx(expected)
    assert a.optimizers["actor"].param_groups[0]["initial_lr"] == lr0


def test_crelu_doubles_fan_in_of_the_following_layer():
    run, _ = build_run({"name": "crelu"})
    q1, actor = run.agent.nets["critic"].q1, run.agent.nets["actor"].net
    assert [layer.in_features for layer in q1.layers[1:]] == [64, 64]
    assert [layer.in_features for layer in actor.layers[1:]] == [32, 32]  # default: critic only
    run, _ = build_run({"name": "crelu", "nets": "both", "width": "halve"})
    actor = run.agent.nets["actor"].net
    assert [layer.out_features for layer in actor.layers[:-1]] == [16, 16]
    assert [layer.in_features for layer in actor.layers[1:]] == [32, 32]
    x = torch.randn(5, 16)
    assert torch.equal(run.agent.nets["actor"].net.act(x), torch.cat((x.clamp(min=0), (-x).clamp(min=0)), -1))


# --- L2-Init, Shrink & Perturb ---------------------------------------------------------------------------------
def test_l2_init_term_is_the_squared_distance_to_the_initial_parameters():
    run, st = build_run({"name": "l2_init", "coef": 0.5}, start_steps=START, steps=2000)
    a, m = run.agent, the_method(run)
    advance(run, st, 1)
    assert m.extra_loss(a, "critic").item() == 0.0
    assert m.extra_loss(a, "actor") is None
    init = [p.detach().clone() for p in a.nets["critic"].parameters()]
    advance(run, st, START + 30)
    expected = 0.5 * sum(((p - q) ** 2).sum() for p, q in zip(a.nets["critic"].parameters(), init, strict=True))
    torch.testing.assert_close(m.extra_loss(a, "critic"), expected.detach())


def test_l2_init_keeps_the_critic_closer_to_its_initialisation():
    def distance(coef):
        run, st = build_run({"name": "l2_init", "coef": coef}, start_steps=START, steps=2000)
        init = [p.detach().clone() for p in run.agent.nets["critic"].parameters()]
        advance(run, st, START + 60)
        return sum(((p - q) ** 2).sum() for p, q in zip(run.agent.nets["critic"].parameters(), init, strict=True))

    assert distance(100.0) < 0.5 * distance(0.0)


def test_shrink_perturb_mixes_weights_with_a_fresh_initialisation():
    run, st = build_run({"name": "shrink_perturb", "interval": 1000, "shrink": 0.6, "perturb": 0.3}, start_steps=START)
    advance(run, st, START + 20)
    a, m = run.agent, the_method(run)
    critic, actor = _params(a.nets["critic"]), _params(a.nets["actor"])
    target = _params(a.targets["critic"])
    rng = torch.get_rng_state()
    m.apply(a, number=1)
    assert torch.equal(torch.get_rng_state(), rng)
    rand = _params(fresh_net(a, "critic", seed_for(m.ctx, "shrink_perturb", 1, "critic")))
    initial = _params(build_run()[0].agent.nets["critic"])
    for name, value in _params(a.nets["critic"]).items():
        torch.testing.assert_close(value, 0.6 * critic[name] + 0.3 * rand[name])
        assert not torch.equal(rand[name], initial[name])
    assert equal_states(_params(a.nets["actor"]), actor) == []  # default: critic only
    assert equal_states(_params(a.targets["critic"]), target) == []


# --- no host synchronisation in the per-step path ----------------------------------------------------------
ACTING_AT = {
    "reset": {"interval": START + 3},
    "redo": {"interval": 2, "tau": 0.5},
    "plasticity_injection": {"at_step": START + 3},
    "layernorm": {},
    "nap": {},
    "crelu": {"nets": "both"},
    "l2_init": {},
    "shrink_perturb": {"interval": START + 3},
}


@pytest.mark.parametrize("agent", ["td3", "sac"])
@pytest.mark.parametrize("method", sorted(ACTING_AT))
def test_method_hooks_do_not_sync_with_the_host(agent, method):
    run, st = build_run({"name": method, **ACTING_AT[method]}, agent=agent, start_steps=START, steps=400)
    advance(run, st, START)
    for t in range(START + 1, START + 6):
        loop.collect(run, st, t)  # acting syncs by nature (the env needs the action on the host)
        with forbid_host_sync():
            run.methods.on_step(run.agent, t)
            batch = run.replay.sample(run.agent.params.batch_size)
            run.agent.update(batch)
            run.methods.on_update(run.agent, batch, t)
    if method == "redo":
        assert the_method(run).recycles == 2


def test_injection_rejects_methods_that_cannot_follow_its_structure():
    with pytest.raises(ValueError, match=r"plasticity_injection cannot be combined with \['redo'\]"):
        build_run([{"name": "redo"}, {"name": "plasticity_injection"}])
    run, _ = build_run([{"name": "plasticity_injection"}, {"name": "layernorm"}, {"name": "crelu"}])
    assert run.agent.nets["critic"].q1.spec.activation == "crelu"


@pytest.mark.parametrize("method", ["reset", "redo", "shrink_perturb"])
def test_weight_edits_keep_sparse_masks(method):
    """Composed with NE (masked layers), re-initialised weights are zero where the mask is off right after the
    method acts (before NE's own re-masking after the next optimizer step could hide a leak)."""
    entry = {"name": method, "interval": 10_000, **({"tau": 0.5} if method == "redo" else {"nets": "both"})}
    if method == "reset":
        entry.pop("nets")
    run, st = build_run([{"name": "ne"}, entry], start_steps=START, steps=20_000)
    advance(run, st, START + 20)
    m, a = the_method(run, 1), run.agent
    masked = [x for net in a.nets.values() for x in net.modules() if getattr(x, "mask", None) is not None]
    assert masked, "NE built no masks"
    if method == "reset":
        m.reset(a, number=1)
    elif method == "redo":
        dormant = m.recycle(a, run.replay.sample(64), number=1)
        assert any(d.any() for ds in dormant.values() for d in ds)
    else:
        m.apply(a, number=1)
    assert all((x.weight[~x.mask] == 0).all() for x in masked)
    assert all((x.weight[x.mask] != 0).any() for x in masked)


# --- one "which networks" type (`nets`) across methods ----------------------------------------------------------
NETS_METHODS = [
    name
    for name, cls in METHODS.items()
    if "nets" in cls.Params.model_fields and (cls.agents is None or "td3" in cls.agents)
]


def test_every_method_that_chooses_networks_uses_the_one_nets_type():
    from neuroplastic.methods._common import Nets

    assert {"reset", "redo", "layernorm", "nap", "crelu", "ne", "ne_code", "static", "rigl", "gmp"} <= set(NETS_METHODS)
    for name in NETS_METHODS:
        assert METHODS[name].Params.model_fields["nets"].annotation == Nets.__origin__, name
    for name, cls in METHODS.items():
        assert "roles" not in cls.Params.model_fields, name


@pytest.mark.parametrize("name", NETS_METHODS)
def test_nets_naming_a_missing_network_is_an_error_naming_it(name):
    with pytest.raises(ValueError, match=rf"{name}\.nets: agent 'td3' has no network\(s\) \['encoder'\]"):
        build_run([{"name": name, "nets": ["critic", "encoder"]}])
    run, _ = build_run([{"name": name, "nets": ["critic"]}])  # an explicit list is the same as `critic`
    assert run.agent.nets.keys() == {"actor", "critic"}
