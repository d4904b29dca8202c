"""Layered workflow configs (`include:` + overrides), experiments' `defaults:`, and per-env agent overrides of
experiments."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from neuroplastic.experiments import WorkflowConfigError, load_config, plan_from_dict, plan_from_file
from neuroplastic.methods import METHODS
from neuroplastic.overlay import apply_overlay, expand_defaults

REPO = Path(__file__).resolve().parents[2]


def full_config() -> dict:
    return {
        "name": "full",
        "run": {"agent": {"name": "td3", "critic": "ne"}, "steps": 600, "start_steps": 200, "eval_every": 300},
        "experiments": {
            "main": {
                "envs": ["Hopper-v4", "Walker2d-v4"],
                "seeds": 3,
                "variants": [
                    {"label": "TD3"},
                    {"label": "Reset", "method": [{"name": "reset", "interval": 100000}]},
                    {"label": "ReDo", "method": ["redo"]},
                    {"label": "Static", "method": [{"name": "static"}], "sweep": {"method.0.sparsity": [0.5, 0.8]}},
                ],
            },
        },
        "figures": {"curves": {"kind": "curves", "experiment": "main"}},
    }


def methods_of(cfg: dict, label: str) -> list[dict]:
    return next(v for v in cfg["experiments"]["main"]["variants"] if v["label"] == label)["method"]


def test_overlay_merges_budgets_and_replaces_lists():
    overlay = {
        "name": "small",
        "run": {"steps": 100, "agent": {"hidden": 64}},
        "experiments": {"main": {"envs": ["Hopper-v4"], "seeds": 2, "sweeps": {"method.0.sparsity": [0.9]}}},
    }
    cfg = apply_overlay(full_config(), overlay)
    assert cfg["name"] == "small"
    # mappings deep-merge: the agent keeps its name and critic, the run its other budgets
    assert cfg["run"] == {
        "agent": {"name": "td3", "critic": "ne", "hidden": 64},
        "steps": 100,
        "start_steps": 200,
        "eval_every": 300,
    }
    exp = cfg["experiments"]["main"]
    assert exp["envs"] == ["Hopper-v4"] and exp["seeds"] == 2
    assert exp["variants"][3]["sweep"] == {"method.0.sparsity": [0.9]}
    assert cfg["figures"] == full_config()["figures"]
    plan = plan_from_dict(cfg)
    assert len(plan.runs) == 4 * 2  # 4 variants (one sweep point) × 1 env × 2 seeds
    assert {r["agent"]["hidden"] for r in plan.runs.values()} == {64}


def test_overlay_sizes_refine_an_agent_given_by_name():
    cfg = full_config()
    cfg["run"]["agent"] = "td3"
    out = apply_overlay(cfg, {"run": {"agent": {"hidden": 32}}})
    assert out["run"]["agent"] == {"name": "td3", "hidden": 32}


def test_smoke_method_params_fill_unset_keys_and_experiments_retime():
    overlay = {
        "method_params": "smoke",
        "experiments": {"main": {"method_params": {"reset": {"interval": 150}}}},
    }
    cfg = apply_overlay(full_config(), overlay)
    # unset keys come from Method.smoke_params; an explicit paper schedule stays unless the overlay re-times it
    assert methods_of(cfg, "ReDo") == [{"name": "redo", **METHODS["redo"].smoke_params}]
    assert methods_of(cfg, "Reset") == [{"name": "reset", "interval": 150}]
    assert methods_of(cfg, "Static") == [{"name": "static", **METHODS["static"].smoke_params}]
    plain = apply_overlay(full_config(), {"method_params": "smoke"})
    assert methods_of(plain, "Reset") == [{"name": "reset", "interval": 100000}]
    paper = apply_overlay(full_config(), {"experiments": {"main": {"seeds": 1}}})
    assert methods_of(paper, "ReDo") == [{"name": "redo"}]


def test_variant_method_params_retime_one_variant():
    cfg = full_config()
    cfg["experiments"]["main"]["variants"].append({"label": "Reset late", "method": [{"name": "reset"}]})
    over = {"experiments": {"main": {"variant_method_params": {"Reset late": {"reset": {"interval": 400}}}}}}
    out = apply_overlay(cfg, {"method_params": "smoke", **over})
    assert methods_of(out, "Reset late") == [{"name": "reset", "interval": 400}]
    assert methods_of(out, "Reset") == [{"name": "reset", "interval": 100000}]


@pytest.mark.parametrize(
    ("overlay", "expected"),
    [
        ({"figures": {}}, "<top level>.figures: an overlay may not set 'figures'"),
        ({"palette": {"TD3": "red"}}, "<top level>.palette: an overlay may not set 'palette'"),
        ({"run": {"agent": {"lr": 1e-3}}}, "run.agent.lr: an overlay may not set 'lr'"),
        ({"run": {"agent": {"name": "sac"}}}, "run.agent.name: an overlay may not set 'name'"),
        ({"run": {"method": []}}, "run.method: an overlay may not set 'method'"),
        ({"method_params": "fast"}, "method_params: 'fast' is not one of paper, smoke"),
        ({"experiments": {"extra": {"seeds": 1}}}, "experiments.extra: not an experiment of the included config"),
        ({"experiments": {"main": {"variants": []}}}, "experiments.main.variants: an overlay may not set 'variants'"),
        (
            {"experiments": {"main": {"sweeps": {"method.0.zeta": [1]}}}},
            "experiments.main.sweeps.method.0.zeta: no variant of experiment 'main' sweeps",
        ),
        (
            {"experiments": {"main": {"method_params": {"reset": {"last_layers": 1}}}}},
            "experiments.main.method_params.reset.last_layers: not a schedule key of method 'reset'",
        ),
        (
            {"experiments": {"main": {"method_params": {"ne": {"delta": 10}}}}},
            "experiments.main.method_params.ne: no variant of experiment 'main' uses method 'ne'",
        ),
        (
            {"experiments": {"main": {"variant_method_params": {"Ghost": {"reset": {"interval": 1}}}}}},
            "experiments.main.variant_method_params: 'Ghost' is not a variant of experiment 'main'",
        ),
        (
            {"experiments": {"main": {"agent_overrides": {"Ant-v4": {"batch_size": 8}}}}},
            "experiments.main.agent_overrides: env 'Ant-v4' is not in the experiment's envs",
        ),
        (
            {"experiments": {"main": {"run": {"cycle": {"tasks": ["Hopper-v4"]}}}}},
            "experiments.main.run.cycle.tasks: an overlay may not set 'tasks'",
        ),
    ],
    ids=lambda x: None if isinstance(x, dict) else x[:40],
)
def test_overlay_refuses_anything_but_budgets_and_sizes(overlay, expected):
    with pytest.raises(WorkflowConfigError) as err:
        apply_overlay(full_config(), overlay, source="over.yaml")
    assert str(err.value).startswith("over.yaml: invalid overlay")
    assert expected in str(err.value)


def test_include_is_relative_to_the_including_file_and_chains(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "full.yaml").write_text(yaml.safe_dump(full_config()))
    (tmp_path / "mid.yaml").write_text(yaml.safe_dump({"include": "base/full.yaml", "run": {"steps": 300}}))
    (tmp_path / "top.yaml").write_text(yaml.safe_dump({"include": "mid.yaml", "name": "top", "run": {"steps": 100}}))
    cfg = load_config(tmp_path / "top.yaml")
    assert cfg["name"] == "top" and cfg["run"]["steps"] == 100 and "include" not in cfg
    assert load_config(tmp_path / "mid.yaml")["run"]["steps"] == 300
    assert plan_from_file(tmp_path / "top.yaml").name == "top"


def test_missing_and_circular_includes_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text("include: nowhere.yaml\n")
    with pytest.raises(WorkflowConfigError, match=r"include: 'nowhere.yaml' not found"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("include: c.yaml\n")
    (tmp_path / "c.yaml").write_text("include: b.yaml\n")
    with pytest.raises(WorkflowConfigError, match=r"include: 'b.yaml' includes itself"):
        load_config(tmp_path / "b.yaml")


# ---- an experiment's `defaults:` ----

SPARSITIES = {"method.0.sparsity": [0.5, 0.9]}


def study_config(variants: list[dict], defaults: dict | None = None) -> dict:
    """full_config with one more experiment, `study`, of these variants (and `defaults`)."""
    cfg = full_config()
    cfg["experiments"]["study"] = {"envs": ["Hopper-v4"], "seeds": 1, "variants": variants}
    if defaults is not None:
        cfg["experiments"]["study"]["defaults"] = defaults
    return cfg


def compact_study() -> dict:
    return study_config(
        [
            {"label": "Dense", "sweep": {}},
            {"label": "SET", "method": ["set"]},
            {"label": "SET 0.1", "method": [{"name": "set", "drop_fraction": 0.1}]},
            {"label": "Static", "method": [{"name": "static"}], "sweep": {"method.0.sparsity": [0.8]}},
            {"label": "NE", "method": [{"name": "ne", "growth": {"zeta": 0.1}}], "sweep": {}},
        ],
        {
            "sweep": SPARSITIES,
            "method_params": {"set": {"delta": 250, "drop_fraction": 0.3}, "ne": {"growth": {"delta": 500}}},
        },
    )


def explicit_study() -> dict:
    """compact_study written out by hand: what its `defaults` must expand to."""
    return study_config(
        [
            {"label": "Dense"},
            {"label": "SET", "method": [{"name": "set", "delta": 250, "drop_fraction": 0.3}], "sweep": SPARSITIES},
            {"label": "SET 0.1", "method": [{"name": "set", "delta": 250, "drop_fraction": 0.1}], "sweep": SPARSITIES},
            {"label": "Static", "method": [{"name": "static"}], "sweep": {"method.0.sparsity": [0.8]}},
            {"label": "NE", "method": [{"name": "ne", "growth": {"zeta": 0.1, "delta": 500}}]},
        ]
    )


def assert_same_plan(a, b) -> None:
    assert a.runs == b.runs
    assert [m.as_row() for m in a.members] == [m.as_row() for m in b.members]
    assert a.config == b.config  # the validated config, schema defaults filled: what results/plans/<name>.json holds


def test_experiment_defaults_expand_to_the_variants_written_out():
    compact = compact_study()
    expanded = expand_defaults(compact)
    assert "defaults" not in expanded["experiments"]["study"]
    assert compact == compact_study(), "the config passed in is not modified"
    variants = {v["label"]: v for v in expanded["experiments"]["study"]["variants"]}
    # the variant's own value wins; nested mappings are filled key by key; a string entry becomes a mapping
    assert variants["SET 0.1"]["method"] == [{"name": "set", "drop_fraction": 0.1, "delta": 250}]
    assert variants["NE"]["method"] == [{"name": "ne", "growth": {"zeta": 0.1, "delta": 500}}]
    assert variants["SET"]["sweep"] == SPARSITIES and variants["Static"]["sweep"] == {"method.0.sparsity": [0.8]}
    assert variants["Dense"]["sweep"] == {}
    assert expanded["experiments"]["main"] == full_config()["experiments"]["main"]
    assert_same_plan(plan_from_dict(compact), plan_from_dict(explicit_study()))
    assert expand_defaults(full_config()) == full_config()


def test_an_overlay_applies_to_the_variants_written_out(tmp_path):
    # smoke_params fill only what the paper leaves unset: SET's delta 250 from the defaults stays (not smoke's 100)
    overlay = {"method_params": "smoke", "experiments": {"study": {"sweeps": {"method.0.sparsity": [0.9]}}}}
    for name, cfg in (("compact", compact_study()), ("explicit", explicit_study())):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        (tmp_path / f"{name}_smoke.yaml").write_text(yaml.safe_dump({"include": f"{name}.yaml", **overlay}))
    smoke = load_config(tmp_path / "compact_smoke.yaml")
    variants = {v["label"]: v for v in smoke["experiments"]["study"]["variants"]}
    assert variants["SET"]["method"][0]["delta"] == 250 and variants["SET"]["sweep"] == {"method.0.sparsity": [0.9]}
    assert_same_plan(plan_from_file(tmp_path / "compact_smoke.yaml"), plan_from_file(tmp_path / "explicit_smoke.yaml"))
    assert_same_plan(plan_from_file(tmp_path / "compact.yaml"), plan_from_file(tmp_path / "explicit.yaml"))


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        ([SPARSITIES], "experiments.study.defaults: must be a mapping with the keys sweep, method_params"),
        ({"sweeps": SPARSITIES}, "experiments.study.defaults.sweeps: unknown key"),
        ({"sweep": {"method.0.sparsity": 0.5}}, "experiments.study.defaults.sweep: must be a mapping of dotted path"),
        (
            {"method_params": {"sett": {"delta": 5}}},
            "experiments.study.defaults.method_params.sett: no variant of experiment 'study' uses method 'sett' "
            "(its methods: set, static)",
        ),
        (
            {"method_params": {"set": {"delat": 5}}},
            "experiments.study.defaults.method_params.set.delat: not a parameter of method 'set'",
        ),
        ({"method_params": {"set": 5}}, "experiments.study.defaults.method_params.set: must be a mapping of 'set'"),
        ({"method_params": ["set"]}, "experiments.study.defaults.method_params: must be a mapping of method"),
    ],
    ids=lambda x: None if isinstance(x, dict | list) else x[:50],
)
def test_bad_experiment_defaults_name_the_key(defaults, expected):
    cfg = study_config([{"label": "SET", "method": ["set"]}, {"label": "Static", "method": ["static"]}], defaults)
    with pytest.raises(WorkflowConfigError) as err:
        expand_defaults(cfg, source="paper.yaml")
    assert str(err.value).startswith("paper.yaml: invalid experiment defaults")
    assert expected in str(err.value)


def test_a_defaults_sweep_that_no_variant_takes_is_an_error_naming_the_file(tmp_path):
    cfg = study_config([{"label": "Static", "method": ["static"], "sweep": SPARSITIES}], {"sweep": SPARSITIES})
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump({"include": "paper.yaml"}))
    message = r"paper\.yaml: invalid experiment defaults\n  experiments\.study\.defaults\.sweep: every variant"
    for path in ("paper.yaml", "smoke.yaml"):  # the included file is named, not the overlay
        with pytest.raises(WorkflowConfigError, match=message):
            load_config(tmp_path / path)


def test_an_overlay_may_not_set_defaults():
    with pytest.raises(WorkflowConfigError, match=r"experiments\.main\.defaults: an overlay may not set 'defaults'"):
        apply_overlay(full_config(), {"experiments": {"main": {"defaults": {"sweep": SPARSITIES}}}})


# ---- per-env agent overrides ----


def test_agent_overrides_apply_to_their_env_only():
    cfg = full_config()
    cfg["experiments"]["main"]["agent_overrides"] = {"Walker2d-v4": {"batch_size": 32, "hidden": 16}}
    plan = plan_from_dict(cfg)
    by_env = {(m.env, m.variant): plan.runs[m.run_id]["agent"] for m in plan.members}
    assert by_env[("Walker2d-v4", "TD3")]["batch_size"] == 32 and by_env[("Walker2d-v4", "TD3")]["hidden"] == 16
    assert by_env[("Hopper-v4", "TD3")]["batch_size"] == 256 and by_env[("Hopper-v4", "TD3")]["hidden"] == 256
    assert by_env[("Walker2d-v4", "TD3")]["critic"] == "ne"  # the experiment's agent is refined, not replaced


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"Ant-v4": {"batch_size": 32}}, "experiments.main.agent_overrides: env 'Ant-v4' is not one of"),
        ({"Hopper-v4": {"nstep": 1}}, "main.agent_overrides.Hopper-v4.nstep: not a parameter of agent 'td3'"),
        ({"Hopper-v4": {"name": "sac"}}, "experiments.main.agent_overrides.Hopper-v4.name: not a parameter"),
    ],
)
def test_bad_agent_overrides_name_experiment_env_and_key(overrides, expected):
    cfg = full_config()
    cfg["experiments"]["main"]["agent_overrides"] = overrides
    with pytest.raises(WorkflowConfigError) as err:
        plan_from_dict(cfg)
    assert expected in str(err.value)
    assert str(err.value).count(expected) == 1  # reported once, not once per variant


def test_overlay_drops_overrides_of_dropped_envs_and_merges_the_rest():
    cfg = full_config()
    cfg["experiments"]["main"]["agent_overrides"] = {
        "Walker2d-v4": {"batch_size": 512, "buffer_size": 1000},
        "Hopper-v4": {"buffer_size": 5000},
    }
    over = {"experiments": {"main": {"envs": ["Walker2d-v4"], "agent_overrides": {"Walker2d-v4": {"batch_size": 16}}}}}
    out = apply_overlay(cfg, over)
    assert out["experiments"]["main"]["agent_overrides"] == {"Walker2d-v4": {"batch_size": 16, "buffer_size": 1000}}
    with pytest.raises(WorkflowConfigError, match=r"agent_overrides.Walker2d-v4.gamma: an overlay may not set"):
        apply_overlay(cfg, {"experiments": {"main": {"agent_overrides": {"Walker2d-v4": {"gamma": 0.9}}}}})


def test_paper_applies_drqv2_per_task_settings():
    """DrQ-v2's task configs (facebookresearch/drqv2): walker n-step 1 and batch 512, quadruped_run a 1e5 buffer."""
    plan = plan_from_file(REPO / "config" / "paper.yaml")
    drq = [(m.env, plan.runs[m.run_id]["agent"]) for m in plan.members if m.experiment.startswith("drq_")]
    assert {e for e, _ in drq} >= {"dmc-pixels:walker-run", "dmc-pixels:quadruped-run", "dmc-pixels:cheetah-run"}
    for env, agent in drq:
        walker, quadruped = env == "dmc-pixels:walker-run", env == "dmc-pixels:quadruped-run"
        assert (agent["nstep"], agent["batch_size"]) == ((1, 512) if walker else (3, 256)), env
        assert agent["buffer_size"] == (100_000 if quadruped else 1_000_000), env


def test_smoke_schedules_come_from_smoke_params():
    """Every smoke run at the smoke tier's budget (1000 steps, updates from 500) uses its methods' smoke_params."""

    def schedule_of(entry, smoke):  # the entry's values at the smoke_params keys (nested params included)
        return {k: schedule_of(entry[k], v) if isinstance(v, dict) else entry[k] for k, v in smoke.items()}

    plan = plan_from_file(REPO / "config" / "smoke.yaml")
    checked = 0
    for run in plan.runs.values():
        if (run["steps"], run["start_steps"]) != (1000, 500):
            continue
        for entry in run["method"]:
            smoke = METHODS[entry["name"]].smoke_params
            assert schedule_of(entry, smoke) == smoke, entry
            checked += bool(smoke)
    assert checked >= 30  # main_mujoco, motivation, ablation and sensitivity runs


def test_the_committed_smoke_overlay_only_names_allowed_keys(tmp_path):
    """A copy of smoke.yaml with one forbidden key fails, naming it (the overlay rules hold for the real file)."""
    raw = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    bad = copy.deepcopy(raw)
    bad["include"] = os.path.relpath(REPO / "config" / "paper.yaml", tmp_path)
    bad["experiments"]["sensitivity"]["run"] = {"agent": {"critic": "td3"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(WorkflowConfigError, match=r"experiments.sensitivity.run.agent.critic: an overlay may not"):
        load_config(tmp_path / "bad.yaml")


def test_experiments_only_keeps_those_experiments_and_the_figures_that_read_nothing_else():
    base = full_config()
    base["experiments"]["other"] = copy.deepcopy(base["experiments"]["main"])
    base["figures"]["other_curves"] = {"kind": "curves", "experiment": "other"}
    base["figures"]["bars"] = {"kind": "final_bars", "experiment": "main", "reference": {"experiment": "other"}}
    cfg = apply_overlay(base, {"experiments_only": ["main"]})
    assert list(cfg["experiments"]) == ["main"]
    assert list(cfg["figures"]) == ["curves"]  # `bars` normalises by `other`'s runs, so it goes too
    with pytest.raises(WorkflowConfigError, match=r"experiments_only: 'nope' not an experiment"):
        apply_overlay(base, {"experiments_only": ["nope"]})
    with pytest.raises(WorkflowConfigError, match="experiments_only: must be a non-empty list"):
        apply_overlay(base, {"experiments_only": "main"})


STAGE_ONE = ("validation", "validation_ne")
STAGE_TWO = ("validation_td3_paper", "validation_ne_hopper", "validation_review")
SPARSE_STUDY = ("sparse_validation", "sparse_validation_dqn")


def test_validation_config_is_the_validation_experiments_at_cpu_scale():
    plan = plan_from_file(REPO / "config" / "validation.yaml")
    assert list(plan.config["experiments"]) == [*STAGE_ONE, *STAGE_TWO, *SPARSE_STUDY]
    assert all(f["experiment"] in STAGE_ONE + STAGE_TWO + SPARSE_STUDY for f in plan.config["figures"].values())
    stage_one = [plan.runs[r] for r in sorted({r for e in STAGE_ONE for r in plan.experiment_run_ids(e)})]
    assert len(stage_one) == 15  # TD3 × 2 envs × 3 seeds + (TD3, NE, ne_code) × HalfCheetah × 3 seeds
    assert {(r["steps"], r["start_steps"]) for r in stage_one} == {(100_000, 10_000)}
    td3_ref = [r for r in stage_one if r["agent"]["critic"] == "td3"]
    # TD3 logs on the published curves' 5k eval grid; the NE comparison densely, for the review/topology traces.
    assert {r["log_every"] for r in td3_ref} == {5000}
    assert {r["log_every"] for r in stage_one if r["agent"]["critic"] == "ne"} == {1000}
    assert sorted({r["env"] for r in td3_ref}) == ["HalfCheetah-v4", "Hopper-v4"] and len(td3_ref) == 6
    assert {r["env"] for r in stage_one if r["agent"]["critic"] == "ne"} == {"HalfCheetah-v4"}


def test_validation_stage_two_is_300k_with_the_preset_and_shares_ne_runs():
    plan = plan_from_file(REPO / "config" / "validation.yaml")
    ids = {e: plan.experiment_run_ids(e) for e in STAGE_TWO}
    assert len(set().union(*ids.values())) == 15  # 6 preset TD3 + 3 TD3 + 3 NE (shared) + 3 NE −review
    runs = [plan.runs[r] for r in set().union(*ids.values())]
    assert {(r["steps"], r["checkpoint_every"]) for r in runs} == {(300_000, 25_000)}
    preset = [plan.runs[r] for r in ids["validation_td3_paper"]]
    assert sorted({r["env"] for r in preset}) == ["Hopper-v4", "Walker2d-v4"] and len(preset) == 6
    assert {(r["start_steps"], r["update_schedule"], tuple(r["agent"]["hidden"])) for r in preset} == {
        (1000, "episode_end", (400, 300))
    }
    assert {(r["agent"]["lr"], r["agent"]["batch_size"], r["agent"]["critic"]) for r in preset} == {(1e-3, 100, "td3")}
    ne_runs = [plan.runs[r] for r in ids["validation_ne_hopper"] + ids["validation_review"]]
    assert {(r["agent"]["critic"], r["start_steps"], "probe" in r) for r in ne_runs} == {("ne", 10_000, True)}
    assert len(set(ids["validation_ne_hopper"]) & set(ids["validation_review"])) == 3  # NE's runs, trained once
    schedules = {(m["growth"]["delta"], m["review"]["every"]) for r in ne_runs for m in r["method"]}
    assert schedules == {(3000, 300)}  # NE sized to the budget: ~97 topology updates over 290k updates
