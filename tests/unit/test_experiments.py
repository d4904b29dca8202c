"""Workflow config → plan: schema validation, run expansion, deduplication, sweeps, figure checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from neuroplastic import cli, runs
from neuroplastic import config as run_config
from neuroplastic.experiments import WorkflowConfigError, load_config, plan_from_dict, plan_from_file

REPO = Path(__file__).resolve().parents[2]


def base_config() -> dict:
    return {
        "name": "t",
        "run": {"agent": "td3", "steps": 600, "start_steps": 200, "eval_every": 300, "checkpoint_every": 0},
        "experiments": {
            "main": {
                "envs": ["Hopper-v4", "Walker2d-v4"],
                "seeds": 2,
                "variants": [{"label": "TD3"}, {"label": "TD3-NE-critic", "agent": {"critic": "ne"}}],
            },
            "other": {"envs": ["Hopper-v4"], "seeds": [0, 1], "variants": [{"label": "TD3"}]},
        },
        "figures": {"curves": {"kind": "curves", "experiment": "main"}},
    }


def test_expansion_dedups_runs_shared_by_experiments():
    plan = plan_from_dict(base_config())
    assert len(plan.experiment_members("main")) == 8
    assert len(plan.experiment_members("other")) == 2
    # `other` repeats TD3 on Hopper with seeds 0, 1: the same resolved configs, so the same two runs.
    assert len(plan.runs) == 8
    assert set(plan.experiment_run_ids("other")) <= set(plan.experiment_run_ids("main"))
    for rid, run in plan.runs.items():
        assert run_config.run_id(runs.resolve(run)) == rid
    crit = {m.variant: plan.runs[m.run_id]["agent"]["critic"] for m in plan.experiment_members("main")}
    assert crit == {"TD3": "td3", "TD3-NE-critic": "ne"}
    # Defaults were filled (stats, train, container) and the text the train rule writes is the resolved config.
    assert plan.config["stats"]["reps"] == 50000 and plan.config["container"]["enabled"] is False
    rid = plan.members[0].run_id
    assert runs.resolve(yaml.safe_load(plan.run_config_text(rid))) is not None


def test_unknown_top_level_and_nested_keys_are_named():
    cfg = base_config()
    cfg["sedes"] = 3
    cfg["experiments"]["main"]["variants"][0]["lable"] = "x"
    with pytest.raises(WorkflowConfigError) as err:
        plan_from_dict(cfg)
    msg = str(err.value)
    assert "<top level>: unknown key 'sedes'" in msg
    assert "experiments.main.variants[0]: unknown key 'lable'" in msg


def test_unknown_method_names_experiment_and_method():
    cfg = base_config()
    cfg["experiments"]["other"]["variants"].append({"label": "X", "method": [{"name": "not_a_method"}]})
    with pytest.raises(
        WorkflowConfigError, match=r"experiments\.other\.variants\[1\] \(X\).*unknown method 'not_a_method'"
    ):
        plan_from_dict(cfg)


def test_unknown_env_and_run_key_are_named():
    cfg = base_config()
    cfg["experiments"]["other"]["envs"] = ["Nope-v9"]
    with pytest.raises(WorkflowConfigError, match=r"experiments\.other.*unknown env 'Nope-v9'"):
        plan_from_dict(cfg)
    cfg = base_config()
    cfg["experiments"]["main"]["run"] = {"stepz": 5}
    with pytest.raises(WorkflowConfigError, match=r"experiments\.main.*stepz: unknown key"):
        plan_from_dict(cfg)
    cfg = base_config()
    cfg["experiments"]["main"]["run"] = {"seed": 5}
    with pytest.raises(WorkflowConfigError, match=r"run\.seed is not allowed"):
        plan_from_dict(cfg)


def test_sweep_expands_with_tags_and_distinct_variants():
    cfg = base_config()
    cfg["experiments"]["sweep"] = {
        "envs": ["Hopper-v4"],
        "seeds": 1,
        "variants": [
            {"label": "W", "tags": {"family": "td3"}, "sweep": {"agent.hidden": [32, 64], "agent.lr": [1e-3]}}
        ],
    }
    plan = plan_from_dict(cfg)
    members = plan.experiment_members("sweep")
    assert [m.variant for m in members] == ["W[hidden=32,lr=0.001]", "W[hidden=64,lr=0.001]"]
    assert members[0].tags == {"family": "td3", "hidden": 32, "lr": 1e-3}
    assert [plan.runs[m.run_id]["agent"]["hidden"] for m in members] == [32, 64]
    cfg["experiments"]["sweep"]["variants"][0]["sweep"] = {"method.3.x": [1]}
    with pytest.raises(WorkflowConfigError, match=r"sweep\.method\.3\.x"):
        plan_from_dict(cfg)


def test_figure_problems_are_reported_before_anything_runs():
    cfg = base_config()
    cfg["figures"] = {
        "a": {"kind": "curves", "experiment": "nope"},
        "b": {"kind": "probability_of_improvement", "experiment": "main"},
        "c": {"kind": "curves", "experiment": "main", "target": "TD3", "labels": ["Nope"]},
        "d": {"kind": "score_vs_param", "experiment": "main", "x": "sparsity"},
        "e": {"kind": "aggregate_intervals", "experiment": "main", "reference": {"label": "Ghost"}},
        "f": {"kind": "final_bars", "experiment": "main", "reference": {"experiment": "other", "label": "TD3"}},
    }
    with pytest.raises(WorkflowConfigError) as err:
        plan_from_dict(cfg)
    msg = str(err.value)
    assert "figures.a: experiment 'nope' is not declared" in msg
    assert "figures.b: missing key 'target' for kind probability_of_improvement" in msg
    assert "figures.c: unknown key 'target' for kind curves" in msg
    assert "figures.c: label 'Nope' is not a variant" in msg
    assert "figures.d: x: tag 'sparsity' is missing" in msg
    assert "figures.e: reference label 'Ghost'" in msg
    assert "figures.f: env 'Walker2d-v4' has no reference runs in experiment 'other'" in msg


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_committed_configs_plan(name):
    plan = plan_from_file(REPO / "config" / f"{name}.yaml")
    assert plan.name == name
    assert plan.config["figures"], "every config declares figures"
    if name == "paper":
        from neuroplastic.envs import CLASSIC_IDS

        # Full budgets: 1M env steps, except the sparse-training study's classic-control DQN runs (100k steps).
        assert all(int(r["steps"]) >= (100_000 if r["env"] in CLASSIC_IDS else 1_000_000) for r in plan.runs.values())
        for exp in plan.config["experiments"].values():
            from neuroplastic.experiments import seeds_of

            assert len(seeds_of(exp)) >= 7
    else:
        assert all(int(r["steps"]) <= 2000 for r in plan.runs.values())


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_the_plan_file_plans_the_same_runs_and_tables(name, tmp_path):
    # The workflow writes the experiment tables by planning its plan file again (`plan --tables-dir`).
    plan = plan_from_file(REPO / "config" / f"{name}.yaml")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.plan_text())
    assert cli.main(["plan", "--configfile", str(plan_file), "--tables-dir", str(tmp_path / "tables")]) == 0
    again = plan_from_file(plan_file)
    assert again.runs == plan.runs
    for experiment in plan.config["experiments"]:
        expected = plan.experiment_table_text(experiment)
        assert (tmp_path / "tables" / f"{experiment}.json").read_text() == expected
    assert len(list((tmp_path / "tables").iterdir())) == len(plan.config["experiments"])


def test_committed_configs_have_no_line_over_120_characters():
    # A researcher reads the grid in an editor: shared sweeps and settings go into an experiment's `defaults:`.
    for path in sorted((REPO / "config").glob("*.yaml")):
        long = [i for i, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 120]
        assert not long, f"{path.name}: lines over 120 characters: {long}"


def test_smoke_is_an_overlay_with_every_experiment_variant_and_figure_of_paper():
    raw = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    assert raw["include"] == "paper.yaml" and "figures" not in raw
    smoke = load_config(REPO / "config" / "smoke.yaml")
    paper = load_config(REPO / "config" / "paper.yaml")
    assert list(smoke["experiments"]) == list(paper["experiments"])
    assert smoke["figures"] == paper["figures"]
    for exp in smoke["experiments"]:
        labels = [v["label"] for v in smoke["experiments"][exp]["variants"]]
        assert labels == [v["label"] for v in paper["experiments"][exp]["variants"]], exp


def test_every_declared_figure_is_indexed_in_paper_figures_readme():
    readme = (REPO / "paper_figures" / "README.md").read_text()
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for fig in paper["figures"]:
        assert f"| `{fig}` |" in readme, fig


def test_train_batches_group_runs_of_one_resource_class_in_declaration_order():
    cfg = base_config()
    cfg["train"] = {"runs_per_job": 3}
    cfg["experiments"]["other"]["train"] = {"mem_mb": 9000}  # its two runs (shared with main) get max mem_mb
    plan = plan_from_dict(cfg)
    batches = plan.train_batches()
    shared = set(plan.experiment_run_ids("other"))
    # The 2 shared runs (main declares them first) in the 9000 MB class, then main's 6 other runs (3 + 3) in
    # the order main declares them; every run exactly once.
    assert [len(ids) for ids in batches.values()] == [2, 3, 3]
    assert list(batches) == ["train_batch_0", "train_batch_1", "train_batch_2"]
    assert set(batches["train_batch_0"]) == shared
    assert sorted(r for ids in batches.values() for r in ids) == sorted(plan.runs)
    order = list(dict.fromkeys(m.run_id for m in plan.members if m.run_id not in shared))
    assert batches["train_batch_1"] + batches["train_batch_2"] == order
    cfg["train"] = {"runs_per_job": 1}
    assert plan_from_dict(cfg).train_batches() == {}


def test_batching_and_gpu_packing_of_one_run_is_an_error_naming_both():
    cfg = base_config()
    cfg["experiments"]["other"]["train"] = {"runs_per_job": 4, "runs_per_gpu": 2}
    with pytest.raises(WorkflowConfigError) as err:
        plan_from_dict(cfg)
    assert "experiments.other.train: runs_per_job 4 and runs_per_gpu 2" in str(err.value)
