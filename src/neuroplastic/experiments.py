"""Workflow config → plan: experiments expanded into runs, deduplicated by run id.

A workflow config (`config/paper.yaml`, `config/smoke.yaml`) declares named *experiments* (grids of agent ×
env × variant × seed) and *figures*. This module validates such a config against
`workflow/schemas/config.schema.yaml` (unknown keys are errors, defaults are filled), expands every experiment
into fully resolved run configs with `neuroplastic.runs.resolve`, and keys them by `config.run_id`. A run
that two experiments share (NE in the main comparison and in the ablation) is one entry in `Plan.runs` and is
trained once. Nothing is written and nothing is trained here: the Snakefile and the CLI both use this module
before any job starts, so a bad method, env or key stops everything with a message that names it.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from neuroplastic import config as run_config
from neuroplastic import presets
from neuroplastic.agents import AGENTS
from neuroplastic.figures import plan_problems
from neuroplastic.overlay import WorkflowConfigError, deep_merge, expand_defaults, load_workflow_config
from neuroplastic.runs import resolve as resolve_run

__all__ = ["Member", "Plan", "WorkflowConfigError", "expand", "load_config", "plan_from_dict", "plan_from_file"]

# The schema lives with the workflow; an editable install and a repo checkout both find it here.
# A non-editable install (the container) points NEUROPLASTIC_REPO at the copy of the repository it ships.
REPO_ROOT = Path(os.environ.get("NEUROPLASTIC_REPO") or Path(__file__).resolve().parents[2])
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


@dataclass(frozen=True)
class Member:
    """One run as seen by one experiment: which variant, env and seed it stands for."""

    experiment: str
    label: str
    variant: str  # label plus its sweep values: unique within the experiment
    env: str
    seed: int
    run_id: str
    tags: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def as_row(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "label": self.label,
            "variant": self.variant,
            "env": self.env,
            "seed": self.seed,
            "run_id": self.run_id,
            "tags": dict(sorted(self.tags.items())),
        }


@dataclass
class Plan:
    config: dict[str, Any]
    runs: dict[str, dict[str, Any]]  # run id → resolved run config (canonical JSON-able dict)
    members: list[Member]
    train: dict[str, dict[str, Any]]  # run id → train resources (max over the experiments that declare it)

    @property
    def name(self) -> str:
        return self.config["name"]

    def experiment_members(self, experiment: str) -> list[Member]:
        return [m for m in self.members if m.experiment == experiment]

    def experiment_run_ids(self, experiment: str) -> list[str]:
        return sorted({m.run_id for m in self.experiment_members(experiment)})

    def run_config_text(self, run_id: str) -> str:
        """The file `neuroplastic train` reads: the resolved config, byte-identical to the run's config.json."""
        return json.dumps(self.runs[run_id], indent=2, sort_keys=True) + "\n"

    def plan_text(self) -> str:
        """The plan file: the validated config with every default filled. Planning it again gives the same
        runs and experiment tables (the workflow writes the tables from it)."""
        return json.dumps(self.config, sort_keys=True, separators=(",", ":")) + "\n"

    def experiment_table_text(self, experiment: str) -> str:
        rows = [m.as_row() for m in self.experiment_members(experiment)]
        return json.dumps({"experiment": experiment, "members": rows}, indent=2, sort_keys=True) + "\n"

    def figure_spec_text(self, figure: str) -> str:
        spec = {"name": figure, "config_name": self.name, **self.config["figures"][figure]}
        spec["stats"] = self.config["stats"]
        # The aggregated tables sort rows by label; figures keep the experiment's declaration order.
        members = self.experiment_members(spec["experiment"])
        spec["variant_order"] = list(dict.fromkeys(m.variant for m in members))
        spec["palette"] = self.config.get("palette", {})
        return json.dumps(spec, indent=2, sort_keys=True) + "\n"

    def train_batches(self) -> dict[str, list[str]]:
        """Runs with `train.runs_per_job: k > 1` → batches of at most k runs with the same resources (one job and
        one process each, `neuroplastic train-batch`), named train_batch_<i>. Within a resource class the runs are
        taken in the order the experiments declare them, so that an experiment's runs share few batches and its
        figures can start while other experiments still train."""
        classes: dict[str, list[str]] = {}
        for rid in dict.fromkeys(m.run_id for m in self.members):
            t = self.train[rid]
            if t["runs_per_job"] > 1:
                classes.setdefault(json.dumps(t, sort_keys=True), []).append(rid)
        batches: dict[str, list[str]] = {}
        for key, ids in classes.items():
            k = json.loads(key)["runs_per_job"]
            for start in range(0, len(ids), k):
                batches[f"train_batch_{len(batches)}"] = ids[start : start + k]
        return batches

    def figure_experiments(self, figure: str) -> list[str]:
        """The experiments a figure reads: its own, plus the normalisation reference's when that is another."""
        spec = self.config["figures"][figure]
        exps = [spec["experiment"]]
        ref = spec.get("reference") or self.config["stats"]["reference"]
        if ref.get("experiment") and ref["experiment"] not in exps:
            exps.append(ref["experiment"])
        return exps


# ---------------------------------------------------------------------------------------------------------------
# schema validation with defaults


def _format_path(path: Any) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _format_error(err: Any) -> str:
    where = _format_path(err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        keys = ", ".join(repr(k) for k in extra)
        return f"{where}: unknown key {keys}" if len(extra) == 1 else f"{where}: unknown keys {keys}"
    if err.validator == "required":
        return f"{where}: {err.message}"
    if err.validator == "propertyNames":
        return f"{where}: invalid name {err.instance!r} (letters, digits, _ . -; starting with a letter/digit)"
    return f"{where}: {err.message}"


def validate_schema(cfg: dict[str, Any], schema_path: Path | None = None, source: str = "config") -> dict[str, Any]:
    """Validate against the JSON schema and fill its defaults (a deep copy is returned)."""
    schema_path = Path(schema_path or SCHEMA_PATH)
    if not schema_path.is_file():
        raise WorkflowConfigError(f"schema not found: {schema_path}")
    schema = yaml.safe_load(schema_path.read_text())
    if not isinstance(cfg, dict):
        raise WorkflowConfigError(f"{source}: top level must be a mapping")
    cfg = copy.deepcopy(cfg)

    # First collect every error on the untouched config (defaults must not hide a missing key) ...
    errors = sorted(Draft202012Validator(schema).iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise WorkflowConfigError(f"{source}: invalid workflow config\n  " + "\n  ".join(map(_format_error, errors)))

    # ... then fill defaults (the jsonschema FAQ recipe, as snakemake.utils.validate does).
    base_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from base_properties(validator, properties, instance, schema_)

    filler = validators.extend(Draft202012Validator, {"properties": set_defaults})
    for _ in filler(schema).iter_errors(cfg):
        pass
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# expansion


def _agent_dict(agent: Any) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {"name": agent} if isinstance(agent, str) else dict(agent)


def _merge_agent(base: Any, over: Any) -> Any:
    """Variant agent settings refine the experiment's; a different agent name replaces them."""
    base, over = _agent_dict(base), _agent_dict(over)
    if over is None:
        return base
    if base is None or ("name" in over and over["name"] != base.get("name")):
        return over
    return deep_merge(base, over)


def _set_path(run: dict[str, Any], path: str, value: Any, where: str) -> None:
    """Assign `value` at a dotted path such as `method.0.sparsity` or `agent.hidden`."""
    parts = path.split(".")
    node: Any = run
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise WorkflowConfigError(f"{where}.sweep.{path}: {part!r} is not an index of a {len(node)}-item list")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if part not in node:
                    node[part] = {}
                node = node[part]
        else:
            raise WorkflowConfigError(f"{where}.sweep.{path}: cannot descend into {type(node).__name__} at {part!r}")


def _normalise_methods(methods: Any) -> list[dict[str, Any]]:
    return [{"name": m} if isinstance(m, str) else dict(m) for m in (methods or [])]


def seeds_of(experiment: dict[str, Any]) -> list[int]:
    seeds = experiment["seeds"]
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def _variant_points(variant: dict[str, Any]) -> list[dict[str, Any]]:
    sweep = variant.get("sweep") or {}
    keys = list(sweep)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(sweep[k] for k in keys))]


def _fmt_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _max_train(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if k not in out:
            out[k] = v
        elif k in ("device", "compile"):
            if out[k] != v:
                raise WorkflowConfigError(f"train.{k}: one run is declared with {k} {out[k]!r} and {v!r}")
        else:
            out[k] = max(out[k], v)
    return out


def _agent_override_problems(overrides: dict[str, Any], agent: str | None, where: str) -> list[str]:
    """Per-env agent overrides must name params of the experiment's agent (DrQ-v2's per-task settings)."""
    if agent not in AGENTS:
        return []  # resolving the run reports the unknown agent
    fields = AGENTS[agent].Params.model_fields
    problems = []
    for env, params in overrides.items():
        if not isinstance(params, dict):
            problems.append(f"{where}.agent_overrides.{env}: must be a mapping of {agent!r} params")
            continue
        problems += [
            f"{where}.agent_overrides.{env}.{key}: not a parameter of agent {agent!r}"
            for key in params
            if key == "name" or key not in fields
        ]
    return problems


def _run_defaults(top: dict[str, Any], exp_run: dict[str, Any], variant_run: dict[str, Any], where: str) -> dict:
    """The config's top-level `run:` as the defaults of one variant: a preset named by the experiment's or the
    variant's `run:` takes the place of the top-level keys it sets (neuroplastic.presets)."""
    name = variant_run.get("preset", exp_run.get("preset", top.get("preset")))
    if name is None:
        return top
    try:
        return presets.without_preset_keys(top, name)
    except presets.PresetError as err:
        raise WorkflowConfigError(f"{where}: {err}") from None


def expand(cfg: dict[str, Any]) -> Plan:
    """Expand a schema-validated config into runs; every run is resolved (method, env, agent, keys checked)."""
    runs: dict[str, dict[str, Any]] = {}
    members: list[Member] = []
    train: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for exp_name, exp in cfg["experiments"].items():
        where_exp = f"experiments.{exp_name}"
        exp_train = {**cfg["train"], **exp.get("train", {})}
        agent_overrides = exp.get("agent_overrides") or {}
        problems += [
            f"{where_exp}.agent_overrides: env {env!r} is not one of the experiment's envs {exp['envs']}"
            for env in agent_overrides
            if env not in exp["envs"]
        ]
        seen_variants: set[str] = set()
        for vi, variant in enumerate(exp["variants"]):
            where = f"{where_exp}.variants[{vi}] ({variant['label']})"
            defaults = _run_defaults(cfg.get("run", {}), exp.get("run", {}), variant.get("run", {}), where)
            base = deep_merge(defaults, exp.get("run", {}))
            base = deep_merge(base, variant.get("run", {}))
            agent = None
            for source in (defaults, exp["run"], variant["run"], variant):
                agent = _merge_agent(agent, source.get("agent"))
            if agent is not None:
                base["agent"] = agent
                problems += _agent_override_problems(agent_overrides, agent.get("name"), where_exp)
            for key, origin in (("env", "envs"), ("seed", "seeds"), ("method", "variant's method")):
                if key in base:
                    problems.append(f"{where}: run.{key} is not allowed: it comes from the experiment's {origin}")
            base["method"] = _normalise_methods(variant.get("method"))
            for point in _variant_points(variant):
                tags = dict(variant.get("tags") or {})
                tags.update({k.split(".")[-1]: v for k, v in point.items()})
                variant_id = variant["label"]
                if point:
                    variant_id += "[" + ",".join(f"{k.split('.')[-1]}={_fmt_value(v)}" for k, v in point.items()) + "]"
                if variant_id in seen_variants:
                    problems.append(f"{where}: duplicate variant {variant_id!r} in experiment {exp_name!r}")
                    continue
                seen_variants.add(variant_id)
                for env in exp["envs"]:
                    for seed in seeds_of(exp):
                        run = copy.deepcopy(base)
                        try:
                            for path, value in point.items():
                                _set_path(run, path, value, where)
                        except WorkflowConfigError as err:
                            problems.append(str(err))
                            break
                        run["env"], run["seed"] = env, seed
                        if env in agent_overrides:
                            run["agent"] = deep_merge(run.get("agent", {}), agent_overrides[env])
                        try:
                            resolved = resolve_run(run, source=where)
                        except run_config.ConfigError as err:
                            details = [ln.strip() for ln in str(err).splitlines()[1:]] or [str(err)]
                            problems += [f"{where}, env {env}: {d}" for d in details]
                            break  # one message per variant × env is enough
                        rid = run_config.run_id(resolved)
                        runs[rid] = json.loads(run_config.canonical_json(resolved))
                        train[rid] = _max_train(train.get(rid, exp_train), exp_train)
                        if train[rid]["runs_per_job"] > 1 and train[rid]["runs_per_gpu"] > 1:
                            problems.append(
                                f"{where_exp}.train: runs_per_job {train[rid]['runs_per_job']} and runs_per_gpu "
                                f"{train[rid]['runs_per_gpu']} for run {rid}: a run is either batched in one "
                                "process or packed beside others on a GPU, not both"
                            )
                        members.append(Member(exp_name, variant["label"], variant_id, env, seed, rid, tags))
    if problems:
        problems = list(dict.fromkeys(problems))  # an override problem is found once per variant
        raise WorkflowConfigError("invalid workflow config\n  " + "\n  ".join(problems))
    plan = Plan(cfg, runs, members, train)
    _check_figures(plan)
    return plan


def _check_figures(plan: Plan) -> None:
    problems = plan_problems(plan)
    if problems:
        raise WorkflowConfigError("invalid workflow config\n  " + "\n  ".join(problems))


def load_config(path: str | Path) -> dict[str, Any]:
    """A workflow config from YAML, or JSON (`.json`); an overlay (`include:`) comes back merged and full."""
    return load_workflow_config(path)


def plan_from_dict(cfg: dict[str, Any], source: str = "config", schema_path: Path | None = None) -> Plan:
    """A full config's plan; its experiments' `defaults:` are expanded first (a loaded config has none left)."""
    return expand(validate_schema(expand_defaults(cfg, source), schema_path, source))


def plan_from_file(path: str | Path, schema_path: Path | None = None) -> Plan:
    return plan_from_dict(load_config(path), str(path), schema_path)
