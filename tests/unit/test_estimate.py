"""`neuroplastic estimate`: rates from stored throughput measurements, and `measure` on the loop's own code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neuroplastic import config, loop, runs
from neuroplastic.analysis import budget, estimate
from tests.conftest import tiny_config


def _file(tmp_path, device="cpu", published=False, loop_rows=(), update_rows=(), packing=(), **extra):
    data = {
        "format": 1,
        "published": published,
        "hardware": {"device": device, "cpu": "test cpu", "gpu": "test gpu" if device == "cuda" else None},
        "updates": list(update_rows),
        "loop": list(loop_rows),
        "packing": list(packing),
        **({"source": "a test paper"} if published else {}),
        **extra,
    }
    path = tmp_path / f"{device}-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(data))
    return path


def _loop(agent, method, rate, env="HalfCheetah-v4"):
    return {"agent": agent, "method": method, "env": env, "mode": "off", "device": "cpu", "steps_per_s": rate}


def _upd(agent, method, ratio, env="HalfCheetah-v4"):
    row = {"agent": agent, "method": method, "env": env, "mode": "off", "updates_per_s": 1.0}
    return {**row, "ratio_to_baseline": ratio}


def _given(path):
    (m,) = [d for d in estimate.load_measurements([path]) if d["_given"]]
    return m


def test_rates_are_measured_or_na_with_the_reason(tmp_path):
    m = _given(
        _file(
            tmp_path,
            loop_rows=[_loop("td3", "none", 100.0), _loop("td3", "redo", 80.0)],
            update_rows=[_upd("td3", "ne@10000", 0.5), _upd("sac", "rigl", 0.9)],
        )
    )
    measured = estimate.lookup_rate("td3", "redo", m, "MuJoCo")
    assert (measured.steps_per_s, measured.source) == (80.0, "measured")
    # The agent's loop × the method's update ratio, both measured on this agent in this file.
    ne = estimate.lookup_rate("td3", "ne", m, "MuJoCo")
    assert (ne.steps_per_s, ne.source) == (50.0, "measured") and "update ratio of ne" in ne.detail
    # An NE ablation does a subset of NE's work: costed as NE, and said so.
    ablation = estimate.lookup_rate("td3", "ne_no_review", m, "MuJoCo")
    assert ablation.steps_per_s == 50.0 and "ne_no_review costed as ne (an upper bound)" in ablation.detail
    # rigl's cost is known only on sac: not carried over to td3.
    rigl = estimate.lookup_rate("td3", "rigl", m, "MuJoCo")
    assert (rigl.steps_per_s, rigl.source) == (None, "n/a") and "cost of rigl on td3 is not measured" in rigl.detail
    assert estimate.lookup_rate("td3", "reset", m, "MuJoCo").steps_per_s is None
    drq = estimate.lookup_rate("drqv2", "none", m, "DMC pixels")
    assert (drq.steps_per_s, drq.source) == (None, "n/a") and "no cpu rate of drqv2 on DMC pixels" in drq.detail


def test_rates_are_looked_up_per_env_family(tmp_path):
    """DQN's MLP on CartPole and its CNN on Atari are different classes with their own rates; the cycling env is
    costed on the MuJoCo rows; a family without rows has no rate."""
    rows = [
        _loop("dqn", "none", 300.0, "CartPole-v1"),
        _loop("dqn", "none", 50.0, "ALE/Pong-v5"),
        _loop("td3", "none", 70.0, "HalfCheetah-v4"),
    ]
    updates = [_upd("dqn", "rigl", 0.95, "CartPole-v1"), _upd("dqn", "rigl", 0.8, "ALE/Pong-v5")]
    m = _given(_file(tmp_path, loop_rows=rows, update_rows=updates))
    assert estimate.lookup_rate("dqn", "none", m, "classic control").steps_per_s == 300.0
    assert estimate.lookup_rate("dqn", "none", m, "Atari").steps_per_s == 50.0
    assert estimate.lookup_rate("dqn", "rigl", m, "Atari").steps_per_s == pytest.approx(40.0)
    assert estimate.lookup_rate("dqn", "rigl", m, "classic control").steps_per_s == pytest.approx(285.0)
    cycling = estimate.lookup_rate("td3", "none", m, "cycling")
    assert cycling.steps_per_s == 70.0 and "cycling costed as MuJoCo" in cycling.detail
    assert estimate.lookup_rate("td3", "none", m, "DMC state").source == "n/a"
    run = {"agent": {"name": "dqn"}, "method": [{"name": "rigl", "sparsity": 0.9}]}
    keys = {env: estimate.cost_key({**run, "env": env}) for env in ("CartPole-v1", "Acrobot-v1", "ALE/Pong-v5")}
    assert keys["CartPole-v1"] == keys["Acrobot-v1"] != keys["ALE/Pong-v5"]


def test_each_class_takes_its_rate_from_the_first_file_that_has_one(tmp_path):
    """One machine per rate: DrQ-v2 measured on another day and CPU sits in a file of its own."""
    first = _file(tmp_path, loop_rows=[_loop("td3", "none", 100.0)])
    second = _file(
        tmp_path,
        loop_rows=[_loop("drqv2", "none", 1.0, "dmc-pixels:cheetah-run"), _loop("td3", "none", 50.0)],
        update_rows=[_upd("drqv2", "redo", 0.9, "dmc-pixels:cheetah-run")],
    )
    files = [m for m in estimate.load_measurements([first, second]) if m["_given"]]
    td3 = estimate.lookup_in("td3", "none", files, "MuJoCo", "cpu")
    assert td3.steps_per_s == 100.0 and td3.detail.endswith(f"[{first.name}]")
    redo = estimate.lookup_in("drqv2", "redo", files, "DMC pixels", "cpu")
    assert redo.steps_per_s == pytest.approx(0.9) and redo.detail.endswith(f"[{second.name}]")
    # No file has layernorm on drqv2: the reason comes from the file that has drqv2's rows.
    missing = estimate.lookup_in("drqv2", "layernorm", files, "DMC pixels", "cpu")
    assert missing.source == "n/a" and f"{second.name} has drqv2's baseline" in missing.detail
    assert estimate.lookup_in("td3", "none", [], "MuJoCo", "gpu").detail == (
        "no GPU measurement or published figure stored or given"
    )


def test_a_published_file_gives_its_reason_for_what_it_lacks(tmp_path):
    m = _given(
        _file(
            tmp_path,
            device="cuda",
            published=True,
            loop_rows=[_loop("td3", "none", 900.0)],
            not_available=[{"agent": "dqn", "family": None, "reason": "no DQN row in the test paper"}],
        )
    )
    td3 = estimate.lookup_rate("td3", "none", m, "MuJoCo")
    assert (td3.steps_per_s, td3.source) == (900.0, "published")
    dqn = estimate.lookup_rate("dqn", "none", m, "Atari")
    assert (dqn.steps_per_s, dqn.source, dqn.detail) == (None, "n/a", "no DQN row in the test paper")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"assumed": True, "hardware": {}, "updates": [], "loop": []}))
    with pytest.raises(ValueError, match="key 'assumed' is no longer read"):
        estimate.load_measurements([old])
    unsourced = tmp_path / "unsourced.json"
    unsourced.write_text(json.dumps({"published": True, "hardware": {}, "updates": [], "loop": []}))
    with pytest.raises(ValueError, match="'published' needs a 'source'"):
        estimate.load_measurements([unsourced])


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


def test_measure_times_episode_end_runs_with_per_step_updates(monkeypatch):
    """Episode-end updates come in bursts; a short measurement times the same work one update per env step."""
    built = []

    class Built(Exception):
        pass

    def build(cfg, device):
        built.append(cfg)
        raise Built

    monkeypatch.setattr(loop, "build", build)
    run = json.loads(config.canonical_json(runs.resolve({"preset": "td3_paper", "env": "Hopper-v4", "steps": 5000})))
    assert run["update_schedule"] == "episode_end"
    with pytest.raises(Built):
        estimate.measure(run, 10, "cpu", None)
    assert built[0].update_schedule == "step" and built[0].agent["hidden"] == [400, 300]


# --- budgets: what fits N GPU- or CPU-hours ----------------------------------------------------------
def _budget_config() -> dict:
    """600-step runs; at the rates of `_budget_files` a TD3 run costs 1 CPU-hour, an NE run 2, and a TD3 run 0.1
    GPU-hours (NE has no GPU rate). `shared` repeats two of `main`'s runs."""
    td3 = {"label": "TD3"}
    return {
        "name": "budget",
        "run": {"agent": "td3", "steps": 600, "start_steps": 200, "eval_every": 300, "checkpoint_every": 0},
        "experiments": {
            "main": {
                "envs": ["HalfCheetah-v4"],
                "seeds": 2,
                "variants": [td3, {"label": "NE", "method": [{"name": "ne"}]}],
            },
            "cheap": {"envs": ["Hopper-v4"], "seeds": 1, "variants": [td3]},
            "shared": {"envs": ["HalfCheetah-v4"], "seeds": 2, "variants": [td3]},
        },
        "figures": {"curves": {"kind": "curves", "experiment": "main"}},
    }


def _budget_files(tmp_path) -> list:
    one_hour = 600 / 3600  # env steps/s at which a 600-step run takes an hour
    cpu = _file(tmp_path, loop_rows=[_loop("td3", "none", one_hour)], update_rows=[_upd("td3", "ne", 0.5)])
    gpu = _file(tmp_path, device="cuda", published=True, loop_rows=[_loop("td3", "none", 10 * one_hour)])
    return [cpu, gpu]


@pytest.fixture
def budget_setup(tmp_path):
    from neuroplastic.experiments import plan_from_dict

    plan = plan_from_dict(_budget_config())
    est = estimate.estimate(plan, measurements=_budget_files(tmp_path))
    return plan, est


def test_estimate_never_costs_a_gpu_class_from_a_cpu_ratio(budget_setup):
    _, est = budget_setup
    assert est["experiments"]["main"]["cpu_h"] == pytest.approx(6.0)  # 2 TD3 × 1 h + 2 NE × 2 h
    assert est["experiments"]["main"]["gpu_h"] is None and est["experiments"]["main"]["gpu_h_na_runs"] == 2
    ne = next(c for c in est["classes"] if c["agent_method"]["method"] == [{"name": "ne"}])
    assert ne["cpu"]["source"] == "measured" and ne["gpu"]["source"] == "n/a"
    assert "not measured on cuda" in ne["gpu"]["detail"]
    assert est["experiments"]["cheap"]["gpu_h"] == pytest.approx(0.1)


def test_budget_in_paper_order_keeps_what_fits_and_counts_shared_runs_once(budget_setup):
    plan, est = budget_setup
    b = budget.plan_budget(plan, est, "cpu", 6.5, "paper")
    rows = {r["experiment"]: r for r in b["rows"]}
    assert [r["experiment"] for r in b["rows"]] == ["main", "cheap", "shared"]
    assert rows["main"]["fits"] and rows["main"]["cumulative_h"] == pytest.approx(6.0)
    assert not rows["cheap"]["fits"] and rows["cheap"]["why"] == "needs 1.0 h, 0.5 h left"
    # `shared` adds no run `main` did not: it costs nothing more and fits.
    assert rows["shared"]["new_runs"] == 0 and rows["shared"]["fits"] and rows["shared"]["cumulative_h"] == 6.0
    assert (b["kept"], b["kept_runs"], b["spent_h"]) == (["main", "shared"], 4, pytest.approx(6.0))


def test_budget_cheapest_first_and_on_gpu_skips_what_has_no_rate(budget_setup):
    plan, est = budget_setup
    b = budget.plan_budget(plan, est, "cpu", 6.5, "cheapest")
    assert [r["experiment"] for r in b["rows"]] == ["cheap", "shared", "main"]
    assert b["kept"] == ["cheap", "shared"] and b["spent_h"] == pytest.approx(3.0)
    assert b["rows"][2]["why"] == "needs 4.0 h, 3.5 h left"  # main's two NE runs; its TD3 runs are kept already
    g = budget.plan_budget(plan, est, "gpu", 1.0, "paper")
    assert g["rows"][0] == {**g["rows"][0], "fits": False, "why": "no rate for some of its runs"}
    assert g["kept"] == ["cheap", "shared"] and g["spent_h"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="order must be one of paper, cheapest"):
        budget.plan_budget(plan, est, "gpu", 1.0, "random")
    with pytest.raises(ValueError, match="--gpu-hours must be positive"):
        budget.plan_budget(plan, est, "gpu", 0.0)


def test_the_printed_overlay_runs_exactly_the_kept_subset_at_the_kept_cost(tmp_path, capsys):
    """`estimate --cpu-hours` writes an overlay; planned, it holds the kept experiments' runs and costs what the
    budget listing said."""
    import yaml

    from neuroplastic.cli import main
    from neuroplastic.experiments import plan_from_file

    (tmp_path / "config").mkdir()
    base = tmp_path / "config" / "base.yaml"
    base.write_text(yaml.safe_dump(_budget_config(), sort_keys=False))
    files = _budget_files(tmp_path / "config")
    overlay = tmp_path / "config" / "sub" / "fits.yaml"
    argv = ["estimate", "--configfile", str(base), "--cpu-hours", "6.5", "--overlay-out", str(overlay)]
    assert main([*argv, *[a for f in files for a in ("--measurements", str(f))]]) == 0
    out = capsys.readouterr().out
    assert "kept: 2 experiments, 4 runs, 6.0 CPU-hours" in out, out
    assert overlay.read_text() == "include: ../base.yaml\nexperiments_only: [main, shared]\n"
    full, sub = plan_from_file(base), plan_from_file(overlay)
    assert set(sub.runs) == set(full.experiment_run_ids("main")) | set(full.experiment_run_ids("shared"))
    assert estimate.estimate(sub, measurements=files)["cpu_hours"] == pytest.approx(6.0)
    assert main(["estimate", "--configfile", str(base), "--overlay-out", str(overlay)]) == 2
    assert "--overlay-out needs --gpu-hours or --cpu-hours" in capsys.readouterr().err


def test_building_the_cli_parser_imports_no_torch():
    # `neuroplastic --help` and argument errors must answer without torch's import time; the budget orders the
    # parser offers come from the torch-free budget module.
    code = (
        "import sys\nfrom neuroplastic import cli\ncli.build_parser()\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('neuroplastic'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cli_budget_order_choices_are_the_planner_orders():
    from neuroplastic.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["estimate", "--configfile", "x.yaml", "--order", "random"])
    args = build_parser().parse_args(["estimate", "--configfile", "x.yaml", "--order", budget.ORDERS[-1]])
    assert args.order == budget.ORDERS[-1]
