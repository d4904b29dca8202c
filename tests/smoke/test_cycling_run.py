"""Training on the cycling env: per-task eval rows at every eval step, and mid-phase resume is bit-identical."""

from __future__ import annotations

import pandas as pd
import pytest

from neuroplastic import figures, loop, runs
from neuroplastic.figures.kinds import cycling
from tests.conftest import tiny_config, train_interrupted

pytestmark = pytest.mark.smoke

TASKS = ["HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4"]
PHASE = 150


def cycling_run(**overrides) -> dict:
    return tiny_config(
        agent={"name": "td3", "hidden": 32, "batch_size": 64},
        env="cycling",
        steps=len(TASKS) * PHASE,
        start_steps=100,
        eval_every=75,
        log_every=75,
        cycle={"tasks": TASKS, "phase_steps": PHASE, "eval_max_episode_steps": 40},
        **overrides,
    )


def test_every_eval_step_has_every_task_and_the_phase(tmp_path):
    cfg = runs.resolve(cycling_run())
    loop.train(cfg, tmp_path / "run", progress=False)
    df = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    wide = df.pivot(index="step", columns="metric", values="value")
    eval_steps = list(range(75, cfg.steps + 1, 75))
    for task in TASKS:
        assert wide[f"eval_return.{task}"].dropna().index.tolist() == eval_steps
    assert wide["eval_return"].dropna().index.tolist() == eval_steps
    for t in eval_steps:
        phase = (t - 1) // PHASE  # step t = 150 is the last step of phase 0
        assert wide.at[t, "cycle.phase"] == phase and wide.at[t, "cycle.task_index"] == phase % len(TASKS)
        assert wide.at[t, "eval_return"] == wide.at[t, f"eval_return.{TASKS[phase]}"]
    # Four different tasks give four different returns at one eval point (the rows are not copies).
    assert wide.loc[eval_steps[-1], [f"eval_return.{t}" for t in TASKS]].nunique() == len(TASKS)
    assert wide["fau.critic"].dropna().index.tolist() == eval_steps

    # The cycling figure reads these logs (as the workflow's curves table) and finds the cycle and its phases.
    curves = df.assign(experiment="cyc", label="TD3", variant="TD3", env="cycling", seed=0, run_id="r")
    assert cycling.infer_task_order(curves) == TASKS
    spec = figures.parse_spec({"kind": "cycling", "experiment": "cyc", "stats": {"curve_reps": 50}})
    data = figures.compute(spec, figures.AggregateTables(frames={"cyc": (curves, curves)}))
    assert [(p, e) for p, _, e in cycling.phases(data)] == [(k, PHASE * (k + 1)) for k in range(len(TASKS))]
    assert figures.render_to_files(spec, data, tmp_path / "cycling")[1].stat().st_size > 1000


def test_resume_in_the_middle_of_a_phase_is_bit_identical(tmp_path, monkeypatch, capsys):
    cfg = runs.resolve(cycling_run(checkpoint_every=100))
    loop.train(cfg, tmp_path / "reference", progress=False)
    capsys.readouterr()
    train_interrupted(cfg, tmp_path / "resumed", 470, monkeypatch)
    # Checkpoints at 100, 200, ..., the crash at 470: the run resumes from step 400, in phase 2 (steps 301..450),
    # and then crosses the switch to phase 3 at step 450.
    resumed_at = int(capsys.readouterr().err.split("resumed from checkpoint at step ")[1].split()[0])
    assert resumed_at == 400 and (resumed_at - 1) // PHASE == 2
    ref = (tmp_path / "reference" / "metrics.parquet").read_bytes()
    assert (tmp_path / "resumed" / "metrics.parquet").read_bytes() == ref


def test_episode_mode_run_advances_phases_by_episodes(tmp_path):
    # No updates (start_steps = steps): random actions end Hopper/Walker2d episodes after a few dozen steps.
    data = tiny_config(
        env="cycling",
        steps=400,
        start_steps=400,
        eval_every=400,
        log_every=10,
        cycle={"tasks": ["Hopper-v4", "Walker2d-v4"], "mode": "episodes", "phase_episodes": 2},
    )
    loop.train(runs.resolve(data), tmp_path / "run", progress=False)
    df = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    phase = df[df.metric == "cycle.phase"].set_index("step").value
    task = df[df.metric == "cycle.task_index"].set_index("step").value
    assert phase.is_monotonic_increasing and phase.max() >= 3
    assert (task == phase % 2).all()
