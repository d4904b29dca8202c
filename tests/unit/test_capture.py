"""The captured update (capture.py) against the eager update, for every agent × method of the issue's matrix.

Two runs are built from the same config and seed (bit-identical), fed the same transitions, then driven through
the same env steps with `on_step` / `on_sample` / update / `on_update` (PPO: `on_step` / its rollout's minibatches
/ `on_update`, as the loop drives on-policy agents): one run updates eagerly, the other through
`CapturedUpdate` (`torch.compile(fullgraph=True)` with the cheap `eager` backend: the proxy for "capturable as a CUDA
graph" without inductor's compile time). Method params are scaled so that each method's event (topology update,
recycling, reset, injection) fires inside the updates. After them, every network parameter of the two runs agrees
within ATOL + RTOL·|w| = 3e-5 + 1e-4·|w| (a tenth of an Adam step at lr 3e-4; the traced backward and the
captured Adam round differently from eager: TD3/SAC parameters differ by ~1e-7 after 24 updates), up to OUTLIERS
of its entries within CAP; so do the target networks and the latest losses, and masked weights are exactly zero.
"""

from __future__ import annotations

import json

import pytest
import torch

from neuroplastic import capture, config, loop, runs
from neuroplastic.agents import AGENTS
from neuroplastic.methods import METHODS
from neuroplastic.methods.base import EVENT, Method
from neuroplastic.nets import MaskedLinear
from neuroplastic.seeding import global_rng_state, set_global_rng_state
from tests.conftest import tiny_config

ATOL, RTOL = 3e-5, 1e-4
# Adam turns rounding noise in near-zero gradients (DrQ-v2's trunk sees padded, constant pixels) into steps of
# up to lr, so a few entries may drift further: at most this fraction (or one entry) per parameter, and never
# more than CAP.
OUTLIERS, CAP = 1e-2, 5e-4
UPDATES = 24

# Per agent: config overrides and how many env steps to collect first (pixels render slowly).
AGENT_SETUPS = {
    # policy_delay 1: one traced variant per case (the policy/non-policy split is covered by test_td3_delay).
    "td3": ({"agent": {"name": "td3", "hidden": 32, "batch_size": 32, "policy_delay": 1}}, 64),
    "sac": ({"agent": {"name": "sac", "hidden": 32, "batch_size": 32}}, 64),
    "drqv2": (
        {
            "agent": {"name": "drqv2", "batch_size": 8, "hidden": 16, "feature_dim": 8, "replay_ratio": 1.0},
            "env": "dmc-pixels:cartpole-swingup",
            "env_options": {"size": 32, "episode_frames": 20},
        },
        24,
    ),
    # target_update_period 5: the hard target copy (DQN's `policy` variant) runs captured at updates 5, 10, 15, 20.
    "dqn": (
        {"agent": {"name": "dqn", "hidden": 32, "batch_size": 16, "target_update_period": 5}, "env": "CartPole-v1"},
        64,
    ),
    # On-policy: the first `collect` env steps fill one rollout; its minibatches (3 epochs × 4) are updated on twice,
    # once per iteration (`_drive_on_policy`), so 24 updates, the second with the decayed lr (steps = 3 rollouts).
    "ppo": ({"agent": {"name": "ppo", "hidden": 16, "rollout_length": 64, "batch_size": 16, "epochs": 3}}, 64),
}
# Per agent: overrides of every method's params (DQN's only network is the "critic").
METHOD_OVERRIDES = {"dqn": {"nets": "critic"}}

# Method params that make each event fire within UPDATES updates (updates are numbered from 1).
METHOD_PARAMS = {
    "none": None,
    "ne": {"growth": {"delta": 8}},
    "ne_code": {"growth": {"delta": 8}},
    "redo": {"interval": 8, "tau": 0.5},
    "reset": {"interval": "STEP"},
    "plasticity_injection": {"at_step": "STEP"},
    "layernorm": {},
    "nap": {},
    "l2_init": {"coef": 1e-2},
    "crelu": {},
    "rigl": {"delta": 6},
    "gmp": {"delta": 4},
    "static": {},
    "set": {"delta": 6},
}
_COMMON = [m for m in METHOD_PARAMS if m not in ("static", "set")]
# The methods each agent is checked with (the sparse-training study's `static`/`set` only for its agents DQN and PPO;
# CReLU replaces ReLU and PPO's MLPs are tanh).
AGENT_METHODS = {
    "td3": _COMMON,
    "sac": _COMMON,
    "drqv2": _COMMON,
    "dqn": [*_COMMON, "static", "set"],
    "ppo": [*(m for m in _COMMON if m != "crelu"), "static", "set"],
}
CASES = [(agent, method) for agent in AGENT_SETUPS for method in AGENT_METHODS[agent]]
# Methods whose events replace tensors: the capture must have rebuilt itself.
REBUILDS = {"reset", "plasticity_injection"}


def _config(agent: str, method: str) -> config.RunConfig:
    overrides, collect = AGENT_SETUPS[agent]
    if AGENTS[agent].on_policy:
        # Iterations at env steps `collect` and 2·`collect`; 3 rollouts in the run, so the lr decays by a third.
        event_step, steps, start_steps = 2 * collect, 3 * collect, 0
    else:
        event_step, steps, start_steps = collect + UPDATES // 2, collect + UPDATES, collect
    methods = []
    if METHOD_PARAMS[method] is not None:
        params = {k: (event_step if v == "STEP" else v) for k, v in METHOD_PARAMS[method].items()}
        methods = [{"name": method, **METHOD_OVERRIDES.get(agent, {}), **params}]
    return runs.resolve(
        tiny_config(**overrides, method=methods, steps=steps, start_steps=start_steps, log_every=10_000)
    )


def _drive(run: loop.Run, update, first: int, last: int) -> None:
    for t in range(first, last + 1):
        run.agent.env_step = t
        run.methods.on_step(run.agent, t)
        batch = run.methods.on_sample(run.agent, run.replay, t)
        if batch is None:
            batch = run.replay.sample(run.agent.params.batch_size)
        update(batch)
        run.methods.on_update(run.agent, batch, t)


def _drive_on_policy(run: loop.Run, update, first: int, last: int) -> None:
    """PPO as the loop drives it after env step t (`loop.update_batches`): `on_step`, then the minibatches of the
    full rollout (`rollout_batches`: normalisers, advantages, lr decay, epochs) with `on_update`. The stored rollout
    (full after env step `first`) is reused as the next iterations' (at `first` + k·rollout_length): both runs see
    the same transitions."""
    store = run.replay
    for t in range(first, last + 1, store.length):
        run.agent.env_step = t
        run.methods.on_step(run.agent, t)
        store.pos = store.length  # full again: `rollout_batches` cleared it
        for batch in run.agent.rollout_batches(store):
            update(batch)
            run.methods.on_update(run.agent, batch, t)


def _drive_both(eager: loop.Run, captured: loop.Run, updater, start: int) -> None:
    """Both runs draw the same global random numbers (TD3's target noise, SAC's samples, DrQ-v2's shifts)."""
    if eager.agent.on_policy:
        drive, first, last = _drive_on_policy, start, eager.cfg.steps - 1
    else:
        drive, first, last = _drive, start + 1, start + UPDATES
    rng = global_rng_state()
    drive(eager, eager.agent.update, first, last)
    set_global_rng_state(rng)
    drive(captured, updater, first, last)


def _two_runs(agent: str, method: str, device: str = "cpu") -> tuple[loop.Run, loop.Run, int]:
    """Two identical runs after `collect` env steps (off-policy: random actions; PPO: its policy fills the
    rollout); returns them and the last env step taken."""
    cfg = _config(agent, method)
    collect = AGENT_SETUPS[agent][1]
    runs = []
    for _ in range(2):
        run = loop.build(cfg, torch.device(device))
        state = loop.LoopState()
        for t in range(1, collect + 1):
            loop.collect(run, state, t)
        runs.append(run)
    return runs[0], runs[1], collect


def _assert_close(eager: loop.Run, captured: loop.Run) -> None:
    pairs = [(eager.agent.nets, captured.agent.nets, ""), (eager.agent.targets, captured.agent.targets, "target ")]
    for nets, others, kind in pairs:
        for role, net in nets.items():
            other = dict(others[role].named_parameters())
            for name, p in net.named_parameters():
                q = other[name].detach()
                assert p.shape == q.shape, f"{kind}{role}.{name}"
                diff = (q - p.detach()).abs()
                outside = diff > ATOL + RTOL * p.detach().abs()
                assert int(outside.sum()) <= max(1, OUTLIERS * p.numel()) and diff.max() <= CAP, (
                    f"{kind}{role}.{name}: {int(outside.sum())} of {p.numel()} entries differ, "
                    f"max {float(diff.max()):.2e}"
                )
    for key, value in eager.agent.log_values().items():
        torch.testing.assert_close(captured.agent.log_values()[key].float(), value.float(), atol=ATOL, rtol=RTOL)
    # Masked entries are exactly zero in the captured run too (online and target networks).
    for nets in (captured.agent.nets, captured.agent.targets):
        for role, net in nets.items():
            for name, module in net.named_modules():
                if isinstance(module, MaskedLinear) and module.mask is not None:
                    assert not module.weight[~module.mask].any(), f"{role}.{name}: masked weights are not zero"


@pytest.mark.parametrize(("agent", "method"), CASES)
def test_captured_update_matches_eager(agent, method):
    eager, captured, start = _two_runs(agent, method)
    updater = capture.CapturedUpdate(captured.agent, "compile", backend="eager")
    # A guard that fails between updates (Python state the trace read) would recompile at every event of a long
    # run until the cache limit: here any recompile of a captured body is an error.
    with torch._dynamo.config.patch(error_on_recompile=True):
        _drive_both(eager, captured, updater, start)

    assert captured.agent.updates == eager.agent.updates == UPDATES
    # Most updates ran captured; events (and the first updates, before Adam has state) ran eagerly.
    assert updater.captured_updates >= UPDATES // 2, (updater.captured_updates, updater.eager_updates)
    if method in REBUILDS:
        assert updater.builds >= 2, "the capture did not rebuild after an event that replaced tensors"
    if method in ("ne", "ne_code"):
        (m,) = captured.methods
        assert sum(g.topology_updates for g in m.growth.values()) >= 1
        assert updater.eager_updates >= 2  # topology updates run eagerly
    if method in ("rigl", "gmp", "set"):
        (m,) = captured.methods
        assert sum(m.mask_updates.values()) >= 1
        assert updater.eager_updates >= 2
    if method == "redo":
        (m,) = captured.methods
        assert m.recycles >= 1
    if agent == "dqn":
        assert set(updater._compiled) == {True, False}, "the target-copy variant did not run captured"
    if agent == "ppo":
        # The second iteration's decayed lr reached the capture.
        (group,) = captured.agent.optimizers["actor"].param_groups
        assert group["lr"] < captured.agent.params.lr
        assert float(updater.views["actor"].groups[0].lr) == pytest.approx(group["lr"])
    _assert_close(eager, captured)


def test_td3_delay_traces_both_variants_and_counts_updates():
    eager, captured, start = _two_runs("td3", "ne_code")
    for run in (eager, captured):
        run.agent.params = run.agent.params.model_copy(update={"policy_delay": 2})
    updater = capture.CapturedUpdate(captured.agent, "compile", backend="eager")
    _drive_both(eager, captured, updater, start)
    assert set(updater._compiled) == {True, False}
    (m,) = captured.methods
    (e,) = eager.methods
    # The growth clocks advanced by the host bookkeeping match the eager hooks exactly.
    for role, g in m.growth.items():
        assert (g.step, g.window, g.position, g.topology_updates) == (
            e.growth[role].step,
            e.growth[role].window,
            e.growth[role].position,
            e.growth[role].topology_updates,
        )
    _assert_close(eager, captured)


def test_drqv2_captured_update_reads_each_updates_std():
    """DrQ-v2's exploration std changes every env step: `before_learn` refills the agent's `update_std` in place,
    so the captured update samples with each new value, with no recompile. The std falls to 0 over the driven
    steps and the noise is not clipped, so a stale std would move the losses far beyond the capture tolerance."""
    eager, captured, start = _two_runs("drqv2", "none")
    schedule = {"std_init": 1.0, "std_final": 0.0, "std_steps": start + UPDATES, "std_clip": 10.0}
    for run in (eager, captured):
        run.agent.params = run.agent.params.model_copy(update=schedule)
    std = captured.agent.update_std
    updater = capture.CapturedUpdate(captured.agent, "compile", backend="eager")
    with torch._dynamo.config.patch(error_on_recompile=True):
        _drive_both(eager, captured, updater, start)
    assert updater.captured_updates == UPDATES - 1  # all but the first (Adam has no state yet)
    assert captured.agent.update_std is std and float(std) == 0.0
    _assert_close(eager, captured)


def test_modes_resolve():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert capture.resolve_mode("auto", cpu) == "off"
    assert capture.resolve_mode("auto", cuda) == "graphs"
    assert capture.resolve_mode("compile", cpu) == "compile"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        capture.resolve_mode("graphs", cpu)
    with pytest.raises(ValueError, match="choose one of"):
        capture.resolve_mode("fast", cpu)


def test_eager_method_falls_back_with_a_warning(monkeypatch):
    from neuroplastic.methods.normalization import LayerNormMethod

    _, captured, start = _two_runs("td3", "layernorm")
    monkeypatch.setattr(LayerNormMethod, "capture", "eager")
    with pytest.warns(UserWarning, match="cannot be captured"):
        updater = capture.CapturedUpdate(captured.agent, "compile", backend="eager")
    _drive(captured, updater, start + 1, start + 4)
    assert (updater.captured_updates, updater.eager_updates) == (0, 4)


CUDA_METHODS = ["none", "ne", "ne_code", "redo", "reset", "plasticity_injection", "nap", "l2_init", "rigl", "gmp"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (benchmarks/gpu_check.sh runs this)")
@pytest.mark.parametrize("mode", ["graphs", "compile"])
@pytest.mark.parametrize("method", CUDA_METHODS)
@pytest.mark.parametrize("agent", list(AGENT_SETUPS))
def test_captured_update_matches_eager_on_cuda(agent, method, mode):
    if mode == "compile" and (agent, method) != ("td3", "ne"):
        pytest.skip("an inductor compile takes ~1 min; TD3+NE covers the compile path on CUDA (CPU covers the rest)")
    eager, captured, start = _two_runs(agent, method, device="cuda")
    updater = capture.CapturedUpdate(captured.agent, mode)
    _drive_both(eager, captured, updater, start)
    torch.cuda.synchronize()
    assert updater.captured_updates >= UPDATES // 3, (updater.captured_updates, updater.eager_updates)
    if mode == "graphs":
        assert updater._graphs, "no CUDA graph was captured"
    _assert_close(eager, captured)


TRAIN_SETUPS = {
    "td3": (
        {
            "agent": {"name": "td3", "hidden": 32, "batch_size": 32},
            "method": [{"name": "ne_code", "growth": {"delta": 10}}],
        },
        ("critic_loss", "actor_loss", "updates", "density.critic", "topology.updates.critic"),
    ),
    "dqn": (
        {
            "agent": {"name": "dqn", "hidden": 32, "batch_size": 32, "target_update_period": 7},
            "env": "CartPole-v1",
            "method": [{"name": "ne_code", "nets": "critic", "growth": {"delta": 10}}],
        },
        ("critic_loss", "q_mean", "updates", "density.critic", "topology.updates.critic"),
    ),
}


@pytest.mark.parametrize("agent", list(TRAIN_SETUPS))
def test_train_with_compile_tracks_the_eager_run(tmp_path, monkeypatch, agent):
    """`neuroplastic train --compile compile` end to end (NE with TD3; NE with DQN, whose target copies run
    captured): the same metrics as the eager run, within the capture tolerance; the manifest records the mode.
    Actions are random until the last 40 env steps, so the two runs see the same transitions up to rounding."""
    from neuroplastic import runlog

    monkeypatch.setenv(capture.BACKEND_ENV, "eager")
    overrides, keys = TRAIN_SETUPS[agent]
    raw = tiny_config(**overrides, steps=300, start_steps=260, log_every=300, eval_every=300)
    rows = {}
    for mode in ("off", "compile"):
        out = tmp_path / mode
        loop.train(runs.resolve(raw), out, ckpt_dir=tmp_path / f"ckpt-{mode}", progress=False, compile=mode)
        rows[mode] = {(s, k): v for s, k, v in runlog.read_jsonl(out / runlog.METRICS_JSONL)}
        assert json.loads((out / runlog.MANIFEST_JSON).read_text())["compile"] == mode
    assert rows["off"].keys() == rows["compile"].keys()
    for key in keys:
        (k,) = [k for k in rows["off"] if k[1] == key]
        assert rows["compile"][k] == pytest.approx(rows["off"][k], rel=1e-3, abs=1e-5), key


def test_dqn_runs_captured_and_copies_its_target_on_the_right_updates():
    """`make_update` gives DQN a `CapturedUpdate`; the hard target copy is the `policy` variant, decided on the
    host, so the copy updates run captured too, and right after one the target equals the online network."""
    _, run, _ = _two_runs("dqn", "none")
    period = run.agent.cfg.target_update_period
    update = capture.make_update(run.agent, "compile", backend="eager")
    assert isinstance(update, capture.CapturedUpdate)
    online, target = run.agent.nets["critic"], run.agent.targets["critic"]
    for _ in range(3 * period):
        before = update.captured_updates
        update(run.replay.sample(run.agent.params.batch_size))
        n = run.agent.updates
        equal = all(torch.equal(p, q) for p, q in zip(online.parameters(), target.parameters(), strict=True))
        assert equal == (n % period == 0), n
        if n > 1:  # the first update runs eagerly (Adam has no state yet)
            assert update.captured_updates == before + 1, n
    assert set(update._compiled) == {True, False}
    assert update.captured_updates == 3 * period - 1


def test_ppo_runs_captured_from_its_rollouts():
    """`make_update` gives PPO a `CapturedUpdate` that the loop's on-policy path drives: minibatch steps run
    captured across iterations; the normalisers are updated in place (the capture keeps reading their tensors)
    and the decayed lr of each iteration reaches the capture."""
    _, run, start = _two_runs("ppo", "none")
    agent = run.agent
    update = capture.make_update(agent, "compile", backend="eager")
    assert isinstance(update, capture.CapturedUpdate)
    norm = (agent.obs_norm.mean, agent.obs_norm.var, agent.reward_norm.var)
    lrs = []
    with torch._dynamo.config.patch(error_on_recompile=True):
        for t in range(start, run.cfg.steps, agent.params.rollout_length):
            run.replay.pos = run.replay.length
            for batch in loop.update_batches(run, loop.LoopState(), t):
                update(batch)
            lrs.append(float(update.views["actor"].groups[0].lr))
    assert agent.updates == UPDATES and update.captured_updates == UPDATES - 1
    after = (agent.obs_norm.mean, agent.obs_norm.var, agent.reward_norm.var)
    assert all(a is b for a, b in zip(norm, after, strict=True))
    assert agent.obs_norm.count == 2 * agent.params.rollout_length
    assert lrs == pytest.approx([agent.params.lr, agent.params.lr * 2 / 3])


class ClipWithHostEvent(Method):
    """A toy method with per-update work, written as a new method would be: its own class and nothing else (no
    change to capture.py, the agents or the topology). Every update clips the weights of the networks it
    optimises (tensor work); every `EVERY`-th update shrinks a network whose largest weight, read on the host,
    exceeds `LIMIT` (host work inside the hooks, announced by `before_update`)."""

    name = "clip_with_host_event"
    CLIP, EVERY, LIMIT = 0.5, 5, 0.3

    def __init__(self, params, ctx) -> None:
        super().__init__(params, ctx)
        self.updates_seen = 0
        self.shrinks = 0
        self.event_due = False

    def before_update(self, agent, update, roles):
        self.updates_seen += 1
        self.event_due = update % self.EVERY == 0
        return EVENT if self.event_due else ()

    @torch.no_grad()
    def after_optimizer_step(self, agent, net, update):
        if net not in agent.nets:
            return
        weights = [p for p in agent.nets[net].parameters() if p.dim() == 2]
        torch._foreach_clamp_min_(weights, -self.CLIP)
        torch._foreach_clamp_max_(weights, self.CLIP)
        if self.event_due and max(float(w.abs().max()) for w in weights) > self.LIMIT:
            torch._foreach_mul_(weights, 0.9)
            self.shrinks += 1


def test_a_new_method_in_its_own_module_is_captured_and_tracks_eager(monkeypatch):
    monkeypatch.setitem(METHODS, ClipWithHostEvent.name, ClipWithHostEvent)
    monkeypatch.setitem(METHOD_PARAMS, ClipWithHostEvent.name, {})
    eager, captured, start = _two_runs("td3", ClipWithHostEvent.name)
    updater = capture.CapturedUpdate(captured.agent, "compile", backend="eager")
    with torch._dynamo.config.patch(error_on_recompile=True):
        _drive_both(eager, captured, updater, start)
    (e,) = eager.methods
    (m,) = captured.methods
    assert m.updates_seen == e.updates_seen == UPDATES
    # Every event update ran eagerly (its host work happened), every other one after Adam's first ran captured.
    assert m.shrinks == e.shrinks > 0
    assert updater.eager_updates == 1 + UPDATES // ClipWithHostEvent.EVERY
    assert updater.captured_updates == UPDATES - updater.eager_updates
    _assert_close(eager, captured)
