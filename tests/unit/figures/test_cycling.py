"""The cycling figure on synthetic curves tables (the aggregate's long format)."""

from __future__ import annotations

import pandas as pd
import pytest

from neuroplastic import figures
from neuroplastic.figures.kinds import cycling
from tests.unit.figures.synthetic import CYCLE_TASKS as TASKS
from tests.unit.figures.synthetic import STATS, cycling_curves

EXAMPLE = {"kind": "cycling", "experiment": "cyc", "variant_order": ["NE"], "title": "Cycling"}


def _compute(curves: pd.DataFrame, **spec) -> pd.DataFrame:
    tables = figures.AggregateTables(frames={"cyc": (curves, curves)})
    return figures.compute(figures.parse_spec({**EXAMPLE, "stats": STATS, **spec}), tables)


def test_task_order_is_read_from_the_logs():
    assert cycling.infer_task_order(cycling_curves()) == TASKS


def test_compute_gives_per_task_means_over_seeds_and_the_phase_curve():
    data = _compute(cycling_curves(), variant_order=["TD3", "NE"])
    metrics = list(pd.unique(data["metric"]))
    assert metrics == [f"eval_return.{t}" for t in TASKS] + ["fau.critic", "fau.actor", "cycle.phase"]
    assert list(pd.unique(data["group"])) == ["TD3", "NE"]
    row = data[(data.metric == "eval_return.HalfCheetah-v4") & (data.group == "NE") & (data.step == 150)].iloc[0]
    assert row.point == pytest.approx(100 + 150 + 10 + 0.5)  # mean over seeds 0 and 1
    assert row.ci_low <= row.point <= row.ci_high and row.ci_high - row.ci_low == pytest.approx(1.0, abs=1e-9)
    assert cycling.phases(data) == [(0, 0.0, 100.0), (1, 100.0, 200.0), (2, 200.0, 300.0)]


def test_declared_variants_come_first():
    data = _compute(cycling_curves())  # EXAMPLE declares only NE
    assert list(pd.unique(data["group"])) == ["NE", "TD3"]


def test_compute_rejects_missing_task_and_metric():
    curves = cycling_curves()
    with pytest.raises(figures.FigureError, match="tasks: 'Ant-v4'"):
        _compute(curves, tasks=["Ant-v4"])
    with pytest.raises(figures.FigureError, match=r"metric 'dormant\.critic\.tau0'"):
        _compute(curves, metrics=["dormant.critic.tau0"])
    with pytest.raises(figures.FigureError, match="no runs on env 'cycling'"):
        _compute(curves.assign(env="Hopper-v4"))


def test_render_marks_boundaries_and_trained_phases():
    data = _compute(cycling_curves())
    fig = cycling.render(figures.parse_spec(EXAMPLE), data)
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


# --- in the workflow: the committed configs -----------------------------------------------------------------


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
    from neuroplastic import runs
    from neuroplastic.experiments import plan_from_file
    from tests.conftest import REPO

    plan = plan_from_file(REPO / "config" / f"{name}.yaml")
    members = plan.experiment_members("cycling")
    labels = list(dict.fromkeys(m.label for m in members))
    assert labels == ["TD3", "Reset", "ReDo", "Plasticity Injection", "LayerNorm", "NE"]
    assert plan.config["figures"]["cycling"]["kind"] == "cycling"
    for m in members:
        cfg = runs.resolve(plan.runs[m.run_id])
        assert cfg.env == "cycling" and cfg.cycle.tasks == ["HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4"]
        # Eval and log points fall on every phase switch, so the figure marks the switches exactly.
        assert cfg.cycle.phase_steps % cfg.eval_every == 0 and cfg.cycle.phase_steps % cfg.log_every == 0
