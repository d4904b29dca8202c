"""The captured update (capture.py) against the eager update, for every agent × method of the issue's matrix.

Two runs are built from the same config and seed (bit-identical), fed the same transitions, then driven through
the same env steps with `on_step` / `on_sample` / update / `on_update`: one run updates eagerly, the other through
`CapturedUpdate` (`torch.compile(fullgraph=True)` with the cheap `eager` backend: the proxy for "capturable as a CUDA
graph" without inductor's compile time). Method params are scaled so that each method's event (topology update,
recycling, reset, injection) fires inside the updates. After them, every network parameter of the two runs agrees
within ATOL + RTOL·|w| = 3e-5 + 1e-4·|w| (a tenth of an Adam step at lr 3e-4; the traced backward and the
captured Adam round differently from eager: TD3/SAC parameters differ by ~1e-7 after 24 updates), up to OUTLIERS
of its entries within CAP; so do the latest losses, and masked weights are exactly zero.
"""

from __future__ import annotations

import json

import pytest
import torch

from neuroplastic import capture, config, loop
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
}

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
}
# Methods whose events replace tensors: the capture must have rebuilt itself.
REBUILDS = {"reset", "plasticity_injection"}


def _config(agent: str, method: str) -> config.RunConfig:
    overrides, collect = AGENT_SETUPS[agent]
    event_step = collect + UPDATES // 2
    methods = []
    if METHOD_PARAMS[method] is not None:
        params = {k: (event_step if v == "STEP" else v) for k, v in METHOD_PARAMS[method].items()}
        methods = [{"name": method, **params}]
    return config.resolve(
        tiny_config(**overrides, method=methods, steps=collect + UPDATES, start_steps=collect, log_every=10_000)
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


def _drive_both(eager: loop.Run, captured: loop.Run, updater, start: int) -> None:
    """Both runs draw the same global random numbers (TD3's target noise, SAC's samples, DrQ-v2's shifts)."""
    rng = global_rng_state()
    _drive(eager, eager.agent.update, start + 1, start + UPDATES)
    set_global_rng_state(rng)
    _drive(captured, updater, start + 1, start + UPDATES)


def _two_runs(agent: str, method: str, device: str = "cpu") -> tuple[loop.Run, loop.Run, int]:
    cfg = _config(agent, method)
    runs = []
    for _ in range(2):
        run = loop.build(cfg, torch.device(device))
        state = loop.LoopState()
        for t in range(1, cfg.start_steps + 1):
            loop.collect(run, state, t)
        runs.append(run)
    return runs[0], runs[1], cfg.start_steps


def _assert_close(eager: loop.Run, captured: loop.Run) -> None:
    for role, net in eager.agent.nets.items():
        other = dict(captured.agent.nets[role].named_parameters())
        for name, p in net.named_parameters():
            q = other[name].detach()
            assert p.shape == q.shape, f"{role}.{name}"
            diff = (q - p.detach()).abs()
            outside = diff > ATOL + RTOL * p.detach().abs()
            assert int(outside.sum()) <= max(1, OUTLIERS * p.numel()) and diff.max() <= CAP, (
                f"{role}.{name}: {int(outside.sum())} of {p.numel()} entries differ, max {float(diff.max()):.2e}"
            )
    for key, value in eager.agent.log_values().items():
        torch.testing.assert_close(captured.agent.log_values()[key].float(), value.float(), atol=ATOL, rtol=RTOL)
    # Masked entries are exactly zero in the captured run too (online and target networks).
    for nets in (captured.agent.nets, captured.agent.targets):
        for role, net in nets.items():
            for name, module in net.named_modules():
                if isinstance(module, MaskedLinear) and module.mask is not None:
                    assert not module.weight[~module.mask].any(), f"{role}.{name}: masked weights are not zero"


@pytest.mark.parametrize("method", list(METHOD_PARAMS))
@pytest.mark.parametrize("agent", list(AGENT_SETUPS))
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
    if method in ("rigl", "gmp"):
        (m,) = captured.methods
        assert sum(m.mask_updates.values()) >= 1
        assert updater.eager_updates >= 2
    if method == "redo":
        (m,) = captured.methods
        assert m.recycles >= 1
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


def test_train_with_compile_tracks_the_eager_run(tmp_path, monkeypatch):
    """`neuroplastic train --compile compile` end to end (NE, TD3): the same metrics as the eager run, within the
    capture tolerance; the manifest records the mode. Actions are random until the last 40 env steps, so the two
    runs see the same transitions up to rounding."""
    from neuroplastic import runlog

    monkeypatch.setenv(capture.BACKEND_ENV, "eager")
    raw = tiny_config(
        agent={"name": "td3", "hidden": 32, "batch_size": 32},
        method=[{"name": "ne_code", "growth": {"delta": 10}}],
        steps=300,
        start_steps=260,
        log_every=300,
        eval_every=300,
    )
    rows = {}
    for mode in ("off", "compile"):
        out = tmp_path / mode
        loop.train(config.resolve(raw), out, ckpt_dir=tmp_path / f"ckpt-{mode}", progress=False, compile=mode)
        rows[mode] = {(s, k): v for s, k, v in runlog.read_jsonl(out / runlog.METRICS_JSONL)}
        assert json.loads((out / runlog.MANIFEST_JSON).read_text())["compile"] == mode
    assert rows["off"].keys() == rows["compile"].keys()
    for key in ("critic_loss", "actor_loss", "updates", "density.critic", "topology.updates.critic"):
        (k,) = [k for k in rows["off"] if k[1] == key]
        assert rows["compile"][k] == pytest.approx(rows["off"][k], rel=1e-3, abs=1e-5), key


def test_agents_without_a_captured_update_run_eagerly_with_a_warning():
    cfg = config.resolve(
        tiny_config(agent={"name": "dqn", "hidden": 16}, env="CartPole-v1", steps=400, start_steps=100)
    )
    run = loop.build(cfg, torch.device("cpu"))
    with pytest.warns(UserWarning, match="'dqn' has no captured update"):
        update = capture.make_update(run.agent, "compile")
    assert update == run.agent.update
