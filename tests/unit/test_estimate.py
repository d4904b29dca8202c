"""`neuroplastic estimate`: rates from stored throughput measurements, and `measure` on the loop's own code."""

from __future__ import annotations

import json

import pytest

from neuroplastic import config, loop, runs
from neuroplastic.analysis import estimate
from tests.conftest import tiny_config


def _file(tmp_path, device="cpu", assumed=False, loop_rows=(), update_rows=(), packing=()):
    data = {
        "format": 1,
        "assumed": assumed,
        "hardware": {"device": device, "cpu": "test cpu", "gpu": "test gpu" if device == "cuda" else None},
        "updates": list(update_rows),
        "loop": list(loop_rows),
        "packing": list(packing),
    }
    path = tmp_path / f"{device}-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(data))
    return path


def _loop(agent, method, rate):
    return {"agent": agent, "method": method, "env": "x", "mode": "off", "device": "cpu", "steps_per_s": rate}


def _upd(agent, method, ratio):
    return {"agent": agent, "method": method, "mode": "off", "updates_per_s": 1.0, "ratio_to_baseline": ratio}


def test_rates_are_measured_derived_or_assumed(tmp_path):
    path = _file(
        tmp_path,
        loop_rows=[_loop("td3", "none", 100.0), _loop("td3", "redo", 80.0)],
        update_rows=[_upd("td3", "ne@10000", 0.5), _upd("sac", "rigl", 0.9)],
    )
    (m,) = [d for d in estimate.load_measurements([path]) if d["_given"]]
    measured = estimate.lookup_rate("td3", "redo", m, [])
    assert (measured.steps_per_s, measured.source) == (80.0, "measured")
    derived = estimate.lookup_rate("td3", "ne", m, [])
    assert (derived.steps_per_s, derived.source) == (50.0, "derived")
    # rigl's cost is known only on sac: used for td3 too, still derived.
    assert estimate.lookup_rate("td3", "rigl", m, []).steps_per_s == pytest.approx(90.0)
    unknown = estimate.lookup_rate("td3", "reset", m, [])
    assert (unknown.steps_per_s, unknown.source) == (100.0, "assumed")
    assert estimate.lookup_rate("drqv2", "none", m, []) is None


def test_rates_are_looked_up_per_env_family(tmp_path):
    """DQN's MLP on CartPole and its CNN on Atari are different classes with their own rates; the cycling env is
    costed on the MuJoCo rows; a family without rows has no rate."""
    rows = [
        {**_loop("dqn", "none", 300.0), "env": "CartPole-v1"},
        {**_loop("dqn", "none", 50.0), "env": "ALE/Pong-v5"},
        {**_loop("td3", "none", 70.0), "env": "HalfCheetah-v4"},
    ]
    updates = [
        {**_upd("dqn", "rigl", 0.95), "env": "CartPole-v1"},
        {**_upd("dqn", "rigl", 0.8), "env": "ALE/Pong-v5"},
    ]
    (m,) = [
        d for d in estimate.load_measurements([_file(tmp_path, loop_rows=rows, update_rows=updates)]) if d["_given"]
    ]
    assert estimate.lookup_rate("dqn", "none", m, [], "classic control").steps_per_s == 300.0
    assert estimate.lookup_rate("dqn", "none", m, [], "Atari").steps_per_s == 50.0
    assert estimate.lookup_rate("dqn", "rigl", m, [], "Atari").steps_per_s == pytest.approx(40.0)
    assert estimate.lookup_rate("dqn", "rigl", m, [], "classic control").steps_per_s == pytest.approx(285.0)
    cycling = estimate.lookup_rate("td3", "none", m, [], "cycling")
    assert cycling.steps_per_s == 70.0 and "cycling costed as MuJoCo" in cycling.detail
    assert estimate.lookup_rate("td3", "none", m, [], "DMC state") is None
    run = {"agent": {"name": "dqn"}, "method": [{"name": "rigl", "sparsity": 0.9}]}
    keys = {env: estimate.cost_key({**run, "env": env}) for env in ("CartPole-v1", "Acrobot-v1", "ALE/Pong-v5")}
    assert keys["CartPole-v1"] == keys["Acrobot-v1"] != keys["ALE/Pong-v5"]


def test_packing_gain_uses_the_largest_measured_count_not_above_the_plan(tmp_path):
    rows = [{"processes": k, "aggregate_gain": g} for k, g in ((1, 1.0), (4, 3.1), (8, 5.2))]
    m = {"packing": rows}
    assert estimate.packing_gain(m, 8)[0] == 5.2
    assert estimate.packing_gain(m, 6)[0] == 3.1
    assert estimate.packing_gain(m, 1)[0] == 1.0
    gain, text = estimate.packing_gain({"packing": []}, 8)
    assert gain == 1.0 and "unmeasured" in text


def test_a_given_file_without_required_keys_is_an_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hardware": {}}))
    with pytest.raises(ValueError, match="missing key 'updates'"):
        estimate.load_measurements([bad])


def test_measure_runs_the_loop_with_its_replay_ratio_credit(monkeypatch):
    """DrQ-v2 updates once per two env steps: `measure` drives `loop.advance`, so it times 0.5 updates/step."""
    raw = tiny_config(
        agent={"name": "drqv2", "batch_size": 8, "hidden": 16, "feature_dim": 8},
        env="dmc-pixels:cartpole-swingup",
        env_options={"size": 32, "episode_frames": 20},
        start_steps=16,
        steps=100,
    )
    run = json.loads(config.canonical_json(runs.resolve(raw)))
    seen = []
    advance = loop.advance

    def spy(r, state, t):
        advance(r, state, t)
        seen.append((t, r.agent.updates))

    monkeypatch.setattr(loop, "advance", spy)
    rate = estimate.measure(run, 20, "cpu", 1)
    assert rate > 0
    (t0, u0), (t1, u1) = seen[15], seen[-1]  # after the 16 random steps, to the end
    assert t1 - t0 == 4 + 20  # 4 warm-up iterations, 20 timed
    assert u1 - u0 == (t1 - t0) // 2
