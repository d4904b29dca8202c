"""The cycling figure on synthetic curves tables (the aggregate's long format)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroplastic.analysis import cycling_figure as cf

# Cycle order deliberately not alphabetical, so inferring it cannot pass by sorting.
TASKS = ["Walker2d-v4", "HalfCheetah-v4", "Hopper-v4"]
PHASE, STEPS, EVERY = 100, 300, 50
ST = {"curve_reps": 200, "confidence": 0.95, "seed": 0}


def synthetic_curves(variants=("TD3", "NE"), seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for vi, v in enumerate(variants):
        for s in seeds:
            rid = f"{v}-{s}"
            for t in range(EVERY, STEPS + 1, EVERY):
                phase = (t - 1) // PHASE
                current = TASKS[phase % len(TASKS)]
                values = {f"eval_return.{task}": 100.0 * k + t + 10 * vi + s for k, task in enumerate(TASKS)}
                values["eval_return"] = values[f"eval_return.{current}"]
                values["cycle.phase"] = float(phase)
                values["cycle.task_index"] = float(phase % len(TASKS))
                values["fau.critic"] = 0.5 - t / 1000 + 0.01 * s
                values["fau.actor"] = 0.6 - t / 2000
                for metric, value in values.items():
                    rows.append(("cyc", v, v, "cycling", s, rid, t, metric, value))
    cols = ["experiment", "label", "variant", "env", "seed", "run_id", "step", "metric", "value"]
    return pd.DataFrame(rows, columns=cols)


def test_task_order_is_read_from_the_logs():
    assert cf.infer_task_order(synthetic_curves()) == TASKS


def test_compute_gives_per_task_means_over_seeds_and_the_phase_curve():
    spec = {"experiment": "cyc", "variant_order": ["TD3", "NE"]}
    data = cf.compute(spec, synthetic_curves(), ST, cf.bootstrap_mean_ci)
    metrics = list(pd.unique(data["metric"]))
    assert metrics == [f"eval_return.{t}" for t in TASKS] + ["fau.critic", "fau.actor", "cycle.phase"]
    assert list(pd.unique(data["group"])) == ["TD3", "NE"]
    row = data[(data.metric == "eval_return.HalfCheetah-v4") & (data.group == "NE") & (data.step == 150)].iloc[0]
    assert row.point == pytest.approx(100 + 150 + 10 + 0.5)  # mean over seeds 0 and 1
    assert row.ci_low <= row.point <= row.ci_high and row.ci_high - row.ci_low == pytest.approx(1.0, abs=1e-9)
    assert cf.phases(data) == [(0, 0.0, 100.0), (1, 100.0, 200.0), (2, 200.0, 300.0)]


def test_compute_rejects_missing_task_and_metric():
    curves = synthetic_curves()
    with pytest.raises(cf.CyclingFigureError, match="tasks: 'Ant-v4'"):
        cf.compute({"experiment": "cyc", "tasks": ["Ant-v4"]}, curves, ST, cf.bootstrap_mean_ci)
    with pytest.raises(cf.CyclingFigureError, match=r"metric 'dormant\.critic\.tau0'"):
        cf.compute({"experiment": "cyc", "metrics": ["dormant.critic.tau0"]}, curves, ST, cf.bootstrap_mean_ci)
    with pytest.raises(cf.CyclingFigureError, match="no runs on env 'cycling'"):
        cf.compute({"experiment": "cyc"}, curves.assign(env="Hopper-v4"), ST, cf.bootstrap_mean_ci)


def test_draw_marks_boundaries_and_trained_phases(tmp_path):
    data = cf.compute({"experiment": "cyc"}, synthetic_curves(), ST, cf.bootstrap_mean_ci)
    fig = cf.draw({}, data)
    panels = [ax for ax in fig.axes if ax.get_title() or ax.get_ylabel()]
    assert [ax.get_title() for ax in panels[:3]] == TASKS
    assert [ax.get_ylabel() for ax in panels[3:]] == ["fau.critic", "fau.actor"]
    for ax in panels:
        dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert sorted(ln.get_xdata()[0] for ln in dashed) == [100.0, 200.0]
        assert len([ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]) == 2  # one line per variant
    # Each task panel shades exactly the phase in which that task was trained.
    for k, ax in enumerate(panels[:3]):
        (span,) = ax.patches
        assert span.get_x() == pytest.approx(100.0 * k) and span.get_width() == pytest.approx(100.0)
    out = [tmp_path / f"{i}.png" for i in range(2)]
    for path in out:
        f = cf.draw({}, data)
        f.savefig(path, metadata={"Software": None})
    assert out[0].read_bytes() == out[1].read_bytes()


def test_bootstrap_mean_ci_is_seeded():
    x = np.arange(12, dtype=float).reshape(4, 1, 3)
    a = cf.bootstrap_mean_ci({"v": x}, "mean", 100, 0.9, 3)["v"]
    b = cf.bootstrap_mean_ci({"v": x}, "mean", 100, 0.9, 3)["v"]
    np.testing.assert_array_equal(a[0], [4.5, 5.5, 6.5])
    np.testing.assert_array_equal(a[1], b[1])


# --- in the workflow: figure kind `cycling` and the committed configs -------------------------------------------


def test_workflow_renders_the_cycling_kind_byte_identically(tmp_path):
    from neuroplastic.analysis import aggregate, figures

    curves = synthetic_curves()
    aggregate.write_table(curves, tmp_path / "agg" / "cyc" / "curves")
    aggregate.write_table(aggregate.final_values(curves, 0.1), tmp_path / "agg" / "cyc" / "final")
    stats_cfg = {**ST, "reps": 100, "profile_reps": 100, "final_fraction": 0.1, "reference": {"label": "TD3"}}
    spec = {"name": "cycling", "kind": "cycling", "experiment": "cyc", "stats": stats_cfg, "variant_order": ["NE"]}
    data = figures.compute(spec, tmp_path / "agg")
    assert list(pd.unique(data["group"])) == ["NE", "TD3"]  # declared variants first
    assert list(pd.unique(data["metric"]))[:3] == [f"eval_return.{t}" for t in TASKS]
    figures.write_data(data, tmp_path / "data.csv")
    outs = [figures.render_to_files(spec, figures.read_data(tmp_path / "data.csv"), tmp_path / d / "c") for d in "ab"]
    for p, q in zip(*outs, strict=True):
        assert p.read_bytes() == q.read_bytes() and p.stat().st_size > 1000


def test_cycling_figure_needs_a_cycling_experiment():
    from neuroplastic.experiments import WorkflowConfigError, plan_from_dict

    cfg = {
        "name": "t",
        "run": {"agent": "td3", "steps": 600, "start_steps": 200, "eval_every": 300, "checkpoint_every": 0},
        "experiments": {"main": {"envs": ["Hopper-v4"], "seeds": 1, "variants": [{"label": "TD3"}]}},
        "figures": {"cyc": {"kind": "cycling", "experiment": "main"}},
    }
    with pytest.raises(WorkflowConfigError, match=r"a cycling figure needs an experiment with envs \[cycling\]"):
        plan_from_dict(cfg)
    cfg["experiments"]["main"] = {
        "envs": ["cycling"],
        "seeds": 1,
        "run": {"cycle": {"tasks": ["Hopper-v4", "Walker2d-v4"], "phase_steps": 300}},
        "variants": [{"label": "TD3"}],
    }
    assert len(plan_from_dict(cfg).runs) == 1


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_committed_configs_run_the_cycling_experiment(name):
    from neuroplastic import config
    from neuroplastic.experiments import plan_from_file
    from tests.conftest import REPO

    plan = plan_from_file(REPO / "config" / f"{name}.yaml")
    members = plan.experiment_members("cycling")
    labels = list(dict.fromkeys(m.label for m in members))
    assert labels == ["TD3", "Reset", "ReDo", "Plasticity Injection", "LayerNorm", "NE"]
    assert plan.config["figures"]["cycling"]["kind"] == "cycling"
    for m in members:
        cfg = config.resolve(plan.runs[m.run_id])
        assert cfg.env == "cycling" and cfg.cycle.tasks == ["HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4"]
        # Eval and log points fall on every phase switch, so the figure marks the switches exactly.
        assert cfg.cycle.phase_steps % cfg.eval_every == 0 and cfg.cycle.phase_steps % cfg.log_every == 0
