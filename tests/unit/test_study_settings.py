"""The committed paper config carries the reference codes' settings where they are per task or per study: DrQ-v2's
task groups (facebookresearch/drqv2 cfgs/task) and the sparse-training study's gin configs (google-research/rigl
d39fc7d, rigl/rl/tfagents/configs, rigl/rl/sparsetrain_configs)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

from neuroplastic.experiments import Plan, plan_from_file

REPO = Path(__file__).resolve().parents[2]


@cache
def paper_plan() -> Plan:
    return plan_from_file(REPO / "config" / "paper.yaml")


def test_drq_cartpole_swingup_uses_the_easy_std_schedule():
    """cfgs/task/cartpole_swingup.yaml: `defaults: [easy]` (linear(1.0, 0.1, 100000)); reacher_hard is medium."""
    plan = paper_plan()
    steps = {}
    for member in plan.experiment_members("drq_main"):
        run = plan.runs[member.run_id]
        steps.setdefault(run["env"], set()).add(run["agent"].get("std_steps", 500_000))
    assert steps["dmc-pixels:cartpole-swingup"] == {100_000}
    assert steps["dmc-pixels:reacher-hard"] == {500_000} and steps["dmc-pixels:cheetah-run"] == {500_000}


def _runs(experiment: str, env: str, seed: int = 0) -> dict[str, dict]:
    """variant → resolved run config (as a dict) of one env and seed."""
    plan = paper_plan()
    return {
        m.variant: plan.runs[m.run_id] for m in plan.experiment_members(experiment) if m.env == env and m.seed == seed
    }


def _built_method(run: dict):
    from neuroplastic import loop, runs

    built = loop.build(runs.resolve(run), torch.device("cpu"))
    return built, next(iter(built.methods))


def test_sparse_ppo_settings_are_the_latest_rigl_commits():
    """ppo_mujoco_{dense,sparse,pruning}_config.gin at d39fc7d: weight decay 1e-6 dense (and pruning, which
    inherits it), 1e-4 sparse; SET/RigL ΔT 250, f0 0.3, last update at 120,000; GMP every 500 from 32k to 120k;
    evaluation 20 episodes every 2000 updates (7 iterations of 320)."""
    runs = _runs("sparse_ppo", "Hopper-v4")
    dense, gmp, rigl = runs["Dense"], runs["GMP ERK[sparsity=0.9]"], runs["RigL ERK[sparsity=0.9]"]
    assert (
        dense["agent"]["weight_decay"] == 1e-6 and runs["Dense scaled[sparsity=0.9]"]["agent"]["weight_decay"] == 1e-6
    )
    assert gmp["agent"]["weight_decay"] == 1e-6 and gmp["method"][0]["weight_decay"] == 0.0
    assert rigl["agent"]["weight_decay"] == 1e-4 and runs["Static ERK[sparsity=0.9]"]["agent"]["weight_decay"] == 1e-4
    assert (dense["eval_every"], dense["eval_episodes"], dense["steps"]) == (7 * 2048, 20, 489 * 2048)
    _, method = _built_method(gmp)
    assert method.total_updates == 156_480
    assert method.points[:2] == [32_000, 32_500] and method.points[-1] == 120_000
    _, method = _built_method(rigl)
    assert method.params.drop_fraction == 0.3 and method.points[1] == 250 and method.points[-1] == 120_000


def test_sparse_dqn_classic_settings_are_the_latest_rigl_commits():
    """dqn_gym_*.gin at d39fc7d: CartPole-v0; 1000 random steps + 100k updates; weight decay 1e-6 everywhere
    (the agent's, on hidden kernels); SET/RigL f0 0.5 (was 0.1), last update 75k; GMP 20k → 75k every 1000."""
    runs = _runs("sparse_dqn_classic", "CartPole-v0")
    rigl, gmp, static = runs["RigL ERK[sparsity=0.9]"], runs["GMP ERK[sparsity=0.9]"], runs["Static ERK[sparsity=0.9]"]
    assert all(r["agent"].get("weight_decay") is None for r in runs.values())  # the domain default 1e-6
    assert all(r["method"][0]["weight_decay"] == 0.0 for r in (rigl, gmp, static))
    built, method = _built_method(rigl)
    assert built.agent.cfg.weight_decay == 1e-6 and built.agent.env.max_episode_steps == 200
    assert method.total_updates == 100_000 and method.params.drop_fraction == 0.5 and method.points[-1] == 75_000
    _, method = _built_method(gmp)
    assert method.points[:2] == [20_000, 21_000] and method.points[-1] == 75_000
    assert static["method"][0]["sparse_init"] is True  # fixed_sparse_init = True in dqn_gym_sparse_config.gin


def test_sparse_dqn_atari_static_has_no_sparsity_aware_init():
    """dqn_atari_static.gin leaves init_masks.fixed_sparse_init False; the SET/RigL gins set it True."""
    runs = _runs("sparse_dqn_atari", "ALE/Pong-v5")
    assert runs["Static ERK[sparsity=0.9]"]["method"][0]["sparse_init"] is False
    assert runs["Static uniform[sparsity=0.9]"]["method"][0]["sparse_init"] is False
    assert runs["RigL ERK[sparsity=0.9]"]["method"][0]["sparse_init"] is True


def test_sparse_sac_settings_are_the_latest_rigl_commits():
    """sac_mujoco_*.gin at d39fc7d: 1000 initial steps, 1M updates, weight decay 1e-4 dense and pruning, 1e-6
    sparse; 30 evaluation episodes every 10k steps; the parameter-matched dense network is part of the grid."""
    runs = _runs("sparse_training", "Hopper-v4")
    dense = runs["Dense"]
    assert (
        dense["agent"]["weight_decay"] == 1e-4 and runs["Dense scaled[sparsity=0.9]"]["agent"]["weight_decay"] == 1e-4
    )
    assert (dense["start_steps"], dense["steps"] - dense["start_steps"]) == (1000, 1_000_000)
    assert (dense["eval_every"], dense["eval_episodes"]) == (10_000, 30)
    assert runs["GMP ERK[sparsity=0.9]"]["method"][0]["weight_decay"] == 1e-4
    assert runs["RigL ERK[sparsity=0.9]"]["method"][0]["weight_decay"] == 1e-6
    assert runs["RigL ERK[sparsity=0.9]"]["method"][0]["drop_fraction"] == 0.5


def test_sparse_validation_runs_are_the_study_grids_runs():
    """The validation experiments add no settings of their own: each of their runs is one of the study grid's."""
    plan = paper_plan()
    for small, grid in (("sparse_validation", "sparse_ppo"), ("sparse_validation_dqn", "sparse_dqn_classic")):
        ids = set(plan.experiment_run_ids(small))
        assert len(ids) == 8 * len(plan.config["experiments"][small]["envs"]) * 10
        assert ids <= set(plan.experiment_run_ids(grid)), small
