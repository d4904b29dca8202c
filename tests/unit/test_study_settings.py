"""The committed paper config carries the reference codes' settings where they are per task or per study: DrQ-v2's
task groups (facebookresearch/drqv2 cfgs/task) and the sparse-training study's gin configs (google-research/rigl
d39fc7d, rigl/rl/tfagents/configs, rigl/rl/sparsetrain_configs)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

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
