"""Topology engine: ERK distribution, masks that stay exact through Adam, target masking, primitives."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroplastic.nets import MLP, MLPSpec
from neuroplastic.topology import Topology, erk_sparsities, ops, uniform_sparsities
from neuroplastic.topology.masks import density_metrics, init_mask


def _critic_shapes(obs: int, act: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for head in ("q1", "q2"):
        shapes.update(
            {
                f"{head}.in": (256, obs + act),
                f"{head}.h1": (256, 256),
                f"{head}.h2": (256, 256),
                f"{head}.ln": (256,),
                f"{head}.out": (1, 256),
            }
        )
    return shapes


# Per-layer initial sparsity at 0.8 global, width 256, as the NE code's ERK (`NE/STL_Scheduler.py:16-84`) gives it.
ERK_TABLE = {
    (17, 6): ([0.0, 0.872, 0.0], [0.019, 0.838, 0.838, 0.0, 0.0]),  # HalfCheetah / Walker2d
    (11, 3): ([0.0, 0.844, 0.0], [0.0, 0.825, 0.825, 0.0, 0.0]),  # Hopper
}


@pytest.mark.parametrize(("obs", "act"), list(ERK_TABLE))
def test_erk_matches_spec_table(obs, act):
    actor_expected, critic_expected = ERK_TABLE[(obs, act)]
    actor = erk_sparsities({"l1": (256, obs), "l2": (256, 256), "l3": (act, 256)}, 0.8)
    assert [round(v, 3) for v in actor.values()] == actor_expected
    critic = erk_sparsities(_critic_shapes(obs, act), 0.8)
    assert [round(v, 3) for v in critic.values()][:5] == critic_expected
    assert [round(v, 3) for v in critic.values()][5:] == critic_expected


@pytest.mark.parametrize(("obs", "act"), list(ERK_TABLE))
def test_erk_on_real_networks_matches_table(obs, act):
    """The same numbers through `Topology.init_masks` on the NE critic (LayerNorm weights in the budget)."""
    from neuroplastic.nets import TwinQ

    spec = MLPSpec(obs + act, (256, 256, 256), 1, layernorm=frozenset({2}))
    critic = TwinQ(spec)
    topo = Topology({"critic": critic}, ["critic"])
    sparsity = topo.init_masks("critic", 0.8, init="magnitude")
    got = [round(sparsity[f"q1.layers.{i}"], 3) for i in range(4)]
    expected = ERK_TABLE[(obs, act)][1]
    assert got == [expected[0], expected[1], expected[2], expected[4]]
    for layer in topo.all_layers():
        s = sparsity[layer.name]
        if s == 0:
            assert layer.mask is None
        else:
            assert int(layer.mask.sum()) == layer.numel - int(s * layer.numel)


@settings(max_examples=40, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1, max_size=6),
    sparsity=st.floats(0.05, 0.95),
)
def test_erk_and_uniform_hold_the_global_budget(shapes, sparsity):
    named = {f"l{i}": s for i, s in enumerate(shapes)}
    total = sum(a * b for a, b in shapes)
    for fn in (erk_sparsities, uniform_sparsities):
        try:
            out = fn(named, sparsity)
        except ValueError:
            continue
        assert all(0.0 <= s < 1.0 for s in out.values())
        zeros = sum(out[k] * a * b for k, (a, b) in named.items())
        assert math.isclose(zeros, sparsity * total, rel_tol=1e-9)


def test_erk_forced_dense_layers_and_resolve():
    shapes = {"first": (256, 11), "mid": (256, 256), "last": (3, 256)}
    out = erk_sparsities(shapes, 0.8, dense={"first", "last"})
    assert out["first"] == out["last"] == 0.0
    total = sum(a * b for a, b in shapes.values())
    assert math.isclose(out["mid"] * 256 * 256, 0.8 * total)
    with pytest.raises(ValueError, match="leave no budget"):
        erk_sparsities({"a": (10, 10), "b": (1, 1)}, 0.99, dense={"a"})


def _mlp(seed=0):
    torch.manual_seed(seed)
    return MLP(MLPSpec(8, (32, 32), 4))


def test_masked_weights_stay_exactly_zero_through_100_adam_steps():
    net = _mlp()
    topo = Topology({"net": net}, ["net"])
    topo.init_masks("net", 0.7, distribution="uniform", init="random", generator=torch.Generator().manual_seed(1))
    topo.sync_({})
    layers = topo.sparse_layers("net")
    assert len(layers) == 3
    start = [layer.weight.detach().clone() for layer in layers]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(2)
    for _ in range(100):
        x = torch.randn(64, 8, generator=g)
        loss = (net(x) - 1.0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        # Adam alone moves masked entries (their moments are non-zero from the first step) ...
        topo.apply_("net")
        for layer in layers:
            assert torch.count_nonzero(layer.weight[~layer.mask]) == 0
    # ... and the unmasked ones did train.
    for layer, w0 in zip(layers, start, strict=True):
        assert not torch.equal(layer.weight[layer.mask], w0[layer.mask])


def test_adam_without_apply_breaks_masks():
    """The control for the test above: without `apply_`, masked entries do not stay zero."""
    net = _mlp()
    topo = Topology({"net": net}, ["net"])
    topo.init_masks("net", 0.7, distribution="uniform", init="magnitude")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.randn(64, 8)
    for _ in range(3):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    assert any(torch.count_nonzero(layer.weight[~layer.mask]) > 0 for layer in topo.sparse_layers())


def test_targets_use_online_masks():
    online = _mlp()
    target = _mlp(seed=5)  # different values everywhere
    topo = Topology({"net": online}, ["net"])
    topo.init_masks("net", 0.5, distribution="uniform", init="magnitude")
    topo.sync_({"net": target})
    topo.mask_targets_("net")
    for layer, t in zip(topo.sparse_layers("net"), list(target.layers), strict=True):
        assert torch.count_nonzero(t.weight[~layer.mask]) == 0
        assert torch.count_nonzero(t.weight[layer.mask]) == int(layer.mask.sum())
        assert t.mask is layer.mask
    # A new online mask (topology update) reaches the target once synced.
    layer = topo.sparse_layers("net")[0]
    new = layer.mask.clone()
    new[0] = False
    layer.set_mask(new)
    topo.sync_({"net": target})
    assert target.layers[0].mask is new
    topo.mask_targets_("net")
    assert torch.count_nonzero(target.layers[0].weight[0]) == 0


def test_apply_follows_a_replaced_mask():
    net = _mlp()
    topo = Topology({"net": net}, ["net"])
    topo.init_masks("net", 0.5, distribution="uniform", init="magnitude")
    topo.sync_({})
    topo.apply_("net")
    layer = topo.sparse_layers("net")[1]
    grown = ~layer.mask
    layer.set_mask(layer.mask | grown)  # everything active
    with torch.no_grad():
        layer.weight.fill_(1.0)
    topo.sync_({})
    topo.apply_("net")
    assert torch.all(layer.weight == 1.0)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200),
    k=st.integers(0, 250),
    p_eligible=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_select_top_picks_exactly_the_best_eligible(n, k, p_eligible, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, generator=g)
    eligible = torch.rand(n, generator=g) < p_eligible
    chosen = ops.select_top(scores, eligible, k)
    n_eligible = int(eligible.sum())
    assert int(chosen.sum()) == min(k, n_eligible)
    assert not torch.any(chosen & ~eligible)
    if 0 < int(chosen.sum()) < n_eligible:
        assert scores[chosen].min() >= scores[eligible & ~chosen].max()


@settings(max_examples=40, deadline=None)
@given(k=st.integers(0, 80), seed=st.integers(0, 1000))
def test_prune_and_grow_primitives_respect_the_mask(k, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(8, 10, generator=g)
    mask = torch.rand(8, 10, generator=g) < 0.4
    w = w * mask
    removed = ops.prune_magnitude(w, mask, k)
    assert int(removed.sum()) == min(k, int(mask.sum()))
    assert not torch.any(removed & ~mask)
    if removed.any() and (mask & ~removed).any():
        assert w[removed].abs().max() <= w[mask & ~removed].abs().min()
    grad = torch.randn(8, 10, generator=g)
    grown = ops.grow_gradient(grad, ~mask, k)
    assert int(grown.sum()) == min(k, int((~mask).sum()))
    assert not torch.any(grown & mask)
    rand = ops.grow_random(~mask, k, torch.Generator().manual_seed(seed))
    assert int(rand.sum()) == min(k, int((~mask).sum())) and not torch.any(rand & mask)


def test_prune_units_takes_rows_and_columns_of_given_neurons_up_to_cap():
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0, 0] = False
    rows = torch.tensor([True, False, False, False])
    cols = torch.tensor([False, False, True, False, False, False])
    every = ops.prune_units(mask, rows, cols, cap=None)
    expected = torch.zeros(4, 6, dtype=torch.bool)
    expected[0, 1:] = True
    expected[:, 2] = True
    assert torch.equal(every, expected)
    capped = ops.prune_units(mask, rows, cols, cap=3, generator=torch.Generator().manual_seed(0))
    assert int(capped.sum()) == 3 and not torch.any(capped & ~expected)


def test_init_mask_counts_and_kinds():
    w = torch.randn(20, 30)
    mag = init_mask(w, 100, "magnitude")
    assert int(mag.sum()) == 100
    assert w.abs()[mag].min() >= w.abs()[~mag].max()
    r1 = init_mask(w, 100, "random", torch.Generator().manual_seed(3))
    r2 = init_mask(w, 100, "random", torch.Generator().manual_seed(3))
    assert int(r1.sum()) == 100 and torch.equal(r1, r2) and not torch.equal(r1, mag)


def test_grown_init_and_adam_reset():
    w = torch.nn.Parameter(torch.ones(4, 9))
    new = torch.zeros(4, 9, dtype=torch.bool)
    new[1, 2] = new[3, 4] = True
    ops.init_grown_(w.data, new, "zero")
    assert w.data[new].eq(0).all() and w.data[~new].eq(1).all()
    ops.init_grown_(w.data, new, "lecun", torch.Generator().manual_seed(0))
    assert w.data[new].ne(0).all() and w.data[~new].eq(1).all()
    opt = torch.optim.Adam([w], lr=0.1)
    w.grad = torch.ones_like(w)
    opt.step()
    ops.reset_adam_state_(opt, w, new, reset_step=True)
    state = opt.state[w]
    assert state["exp_avg"][new].eq(0).all() and state["exp_avg"][~new].ne(0).all()
    assert state["exp_avg_sq"][new].eq(0).all() and float(state["step"]) == 0.0


def test_density_metrics_count_masks_not_weights():
    net = _mlp()
    topo = Topology({"net": net}, ["net"])
    topo.init_masks("net", 0.5, distribution="uniform", init="magnitude")
    with torch.no_grad():  # an active weight that happens to be zero is still active
        layer = topo.sparse_layers("net")[0]
        layer.weight[layer.mask.nonzero()[0].tolist()] = 0.0
    d = {k: float(v) for k, v in density_metrics({"net": net}).items()}
    total = sum(layer.numel for layer in topo.all_layers())
    active = sum(int(layer.mask.sum()) for layer in topo.sparse_layers())
    assert d["density.net"] == pytest.approx(active / total)
    assert d["density.net.layers.0"] == pytest.approx(int(layer.mask.sum()) / layer.numel)
    assert density_metrics({"dense": _mlp()}) == {}


def test_float_masks_follow_a_replaced_mask_in_place():
    """A captured update holds the float masks; a topology update must write into them, not replace them."""
    net = _mlp()
    topo = Topology({"net": net}, ["net"])
    topo.init_masks("net", 0.5, distribution="uniform", init="magnitude")
    topo.sync_({})
    held = list(topo._synced["net"].float_masks)
    layer = topo.sparse_layers("net")[0]
    new = layer.mask.clone()
    new[0] = ~new[0]
    layer.set_mask(new)
    topo.sync_({})
    floats = topo._synced["net"].float_masks
    assert all(a is b for a, b in zip(floats, held, strict=True))
    assert torch.equal(held[0], new.float())
