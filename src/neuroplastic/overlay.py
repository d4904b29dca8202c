"""Layered workflow configs: `include:` a full config, then override its budgets.

`config/paper.yaml` is the one full description of every experiment. `config/smoke.yaml` (and any other
overlay) starts with `include: paper.yaml` and changes only budgets, seeds, env lists, sweep sizes, network
sizes and method schedules; everything it may not change is an error that names the key. The result of
`resolve_includes` is a plain full config (no `include`, no overlay-only keys, every experiment's `defaults:`
written into its variants by `expand_defaults`) that the schema and `neuroplastic.experiments` check and expand
exactly like `paper.yaml`. The Snakefile, the CLI (`neuroplastic plan|estimate --configfile`) and the tests all
load configs through `load_workflow_config`.

The merge rules, key by key, are written once: config/README.md, "Overlays" (tests/unit/test_docs.py checks
that its lists of allowed keys are the constants below); an experiment's `defaults:` in its table of experiment
keys.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from neuroplastic.methods import METHODS

# What an overlay may change. Anything else is an error naming the key.
TOP_KEYS = (
    "include",
    "name",
    "description",
    "method_params",
    "experiments_only",
    "run",
    "train",
    "stats",
    "estimate",
    "container",
)
EXPERIMENT_KEYS = (
    "envs",
    "seeds",
    "run",
    "train",
    "sweeps",
    "agent_overrides",
    "method_params",
    "variant_method_params",
)
RUN_KEYS = (
    "steps",
    "start_steps",
    "eval_every",
    "eval_episodes",
    "log_every",
    "metrics_batch",
    "checkpoint_every",
    "agent",
    "env_options",
    "cycle",
)
AGENT_KEYS = ("hidden", "batch_size", "buffer_size", "feature_dim", "conv_channels", "std_steps", "rollout_length")
ENV_OPTION_KEYS = ("size", "episode_frames")
CYCLE_KEYS = ("phase_steps", "cycles", "eval_max_episode_steps")
METHOD_PARAM_SETS = ("paper", "smoke")
# What an experiment's `defaults:` (a full config's shorthand, see `expand_defaults`) may hold.
DEFAULTS_KEYS = ("sweep", "method_params")


class WorkflowConfigError(ValueError):
    """A workflow config that cannot be loaded or planned. The message names the offending key or experiment."""


def deep_merge(base: Any, over: Any) -> Any:
    """Mappings merge key by key (recursively); anything else in `over` replaces `base`."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _fill(entry: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`defaults` for every key `entry` leaves unset (recursively into sub-mappings)."""
    out = dict(entry)
    for k, v in defaults.items():
        if k not in out:
            out[k] = copy.deepcopy(v)
        elif isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _fill(out[k], v)
    return out


def _unknown_keys(given: Any, allowed: dict[str, Any] | tuple[str, ...], where: str, what: str) -> list[str]:
    if not isinstance(given, dict):
        return [f"{where}: must be a mapping"]
    return [
        f"{where}.{k}: an overlay may not set {k!r} ({what}; allowed: {', '.join(sorted(allowed))})"
        for k in given
        if k not in allowed
    ]


def _schedule_key_problems(params: Any, schedule: Any, where: str, method: str) -> list[str]:
    """Keys of `params` that are not keys of the method's smoke_params (its schedule), recursively."""
    if not isinstance(params, dict):
        return [f"{where}: must be a mapping of {method!r} params"]
    problems = []
    for k, v in params.items():
        if not isinstance(schedule, dict) or k not in schedule:
            keys = ", ".join(sorted(schedule)) if isinstance(schedule, dict) and schedule else "none"
            problems.append(f"{where}.{k}: not a schedule key of method {method!r} (its smoke_params keys: {keys})")
        elif isinstance(v, dict) and isinstance(schedule[k], dict):
            problems += _schedule_key_problems(v, schedule[k], f"{where}.{k}", method)
    return problems


def _merge_run(base: dict[str, Any] | None, over: dict[str, Any]) -> dict[str, Any]:
    base = dict(base or {})
    if isinstance(base.get("agent"), str):  # `agent: td3` is `{name: td3}`: sizes refine it
        base["agent"] = {"name": base["agent"]}
    return deep_merge(base, over)


def _run_problems(run: Any, where: str) -> list[str]:
    problems = _unknown_keys(run, RUN_KEYS, where, "a run key other than a budget or a size")
    if problems or not isinstance(run, dict):
        return problems
    if "agent" in run:
        problems += _agent_problems(run["agent"], f"{where}.agent")
    if "env_options" in run:
        problems += _unknown_keys(run["env_options"], ENV_OPTION_KEYS, f"{where}.env_options", "not a size")
    if "cycle" in run:
        problems += _unknown_keys(run["cycle"], CYCLE_KEYS, f"{where}.cycle", "not a budget")
    return problems


def _agent_problems(agent: Any, where: str) -> list[str]:
    return _unknown_keys(agent, AGENT_KEYS, where, "the overlay resizes the included agent, it does not change it")


def _method_entries(variant: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": m} if isinstance(m, str) else dict(m) for m in variant.get("method") or []]


def _overlay_experiment(
    name: str, base: dict[str, Any], over: Any, smoke: bool, where: str
) -> tuple[dict[str, Any], list[str]]:
    problems = _unknown_keys(over, EXPERIMENT_KEYS, where, "not a budget, seed, env list, sweep or size")
    if not isinstance(over, dict):
        return base, problems
    exp = copy.deepcopy(base)
    for key in ("envs", "seeds"):
        if key in over:
            exp[key] = copy.deepcopy(over[key])
    for key in ("run", "train"):
        if key in over:
            if key == "run":
                problems += _run_problems(over["run"], f"{where}.run")
                exp["run"] = _merge_run(exp.get("run"), over["run"])
            else:
                exp[key] = deep_merge(exp.get(key, {}), over[key])

    overrides = {env: v for env, v in (exp.get("agent_overrides") or {}).items() if env in exp["envs"]}
    for env, agent in (over.get("agent_overrides") or {}).items():
        problems += _agent_problems(agent, f"{where}.agent_overrides.{env}")
        if env not in exp["envs"]:
            problems.append(f"{where}.agent_overrides: env {env!r} is not in the experiment's envs {exp['envs']}")
        overrides[env] = deep_merge(overrides.get(env, {}), agent)
    if overrides or "agent_overrides" in exp:
        exp["agent_overrides"] = overrides

    for path, values in (over.get("sweeps") or {}).items():
        swept = [v for v in exp["variants"] if path in (v.get("sweep") or {})]
        if not swept:
            problems.append(f"{where}.sweeps.{path}: no variant of experiment {name!r} sweeps {path!r}")
        for v in swept:
            v["sweep"][path] = copy.deepcopy(values)

    labels = {v["label"]: v for v in exp["variants"]}
    used = {e["name"] for v in exp["variants"] for e in _method_entries(v)}
    retime = over.get("method_params") or {}
    for method, params in retime.items():
        if method not in used:
            problems.append(f"{where}.method_params.{method}: no variant of experiment {name!r} uses method {method!r}")
        else:
            schedule = METHODS[method].smoke_params if method in METHODS else {}
            problems += _schedule_key_problems(params, schedule, f"{where}.method_params.{method}", method)
    per_variant = over.get("variant_method_params") or {}
    for label, methods in per_variant.items():
        if label not in labels:
            problems.append(f"{where}.variant_method_params: {label!r} is not a variant of experiment {name!r}")
            continue
        names = {e["name"] for e in _method_entries(labels[label])}
        for method, params in (methods or {}).items():
            w = f"{where}.variant_method_params.{label}.{method}"
            if method not in names:
                problems.append(f"{w}: variant {label!r} has no method {method!r}")
            else:
                schedule = METHODS[method].smoke_params if method in METHODS else {}
                problems += _schedule_key_problems(params, schedule, w, method)
    if problems:
        return exp, problems

    for variant in exp["variants"]:
        if not variant.get("method"):
            continue
        entries = []
        for entry in _method_entries(variant):
            method = entry["name"]
            if smoke and method in METHODS:
                entry = _fill(entry, METHODS[method].smoke_params)
            entry = deep_merge(entry, retime.get(method, {}))
            entry = deep_merge(entry, (per_variant.get(variant["label"]) or {}).get(method, {}))
            entries.append(entry)
        variant["method"] = entries
    return exp, problems


def expand_defaults(cfg: Any, source: str = "config") -> Any:
    """`cfg` with every experiment's `defaults:` written into its variants, and the `defaults` keys dropped.

    `defaults.sweep` becomes the `sweep` of every variant that sets none (`sweep: {}` opts a variant out);
    `defaults.method_params` (`{method: {param: value}}`) fills each param into every entry of that method that
    leaves it unset. So a study whose variants share a sweep and per-method settings writes each once, and what
    the overlay and the planner see is the same config written out variant by variant (same runs, same ids). A
    config without `defaults` is returned as it is; `cfg` itself is not modified."""
    experiments = cfg.get("experiments") if isinstance(cfg, dict) else None
    if not isinstance(experiments, dict):
        return cfg  # the schema names what is wrong
    if not any(isinstance(exp, dict) and "defaults" in exp for exp in experiments.values()):
        return cfg
    expanded, problems = {}, []
    for name, exp in experiments.items():
        if isinstance(exp, dict) and "defaults" in exp:
            exp, exp_problems = _with_defaults(name, exp)
            problems += exp_problems
        expanded[name] = exp
    if problems:
        raise WorkflowConfigError(f"{source}: invalid experiment defaults\n  " + "\n  ".join(problems))
    return {**cfg, "experiments": expanded}


def _method_name(entry: Any) -> str | None:
    """The method an entry of a variant's `method:` list names; None for a malformed entry (the schema names it)."""
    name = entry.get("name") if isinstance(entry, dict) else entry
    return name if isinstance(name, str) else None


def _with_defaults(name: str, exp: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """One experiment with its `defaults` applied (new dicts throughout: variants may be YAML aliases shared with
    another experiment), and the problems of its `defaults`."""
    where = f"experiments.{name}.defaults"
    defaults = exp["defaults"]
    out = {k: v for k, v in exp.items() if k != "defaults"}
    if not isinstance(defaults, dict):
        return out, [f"{where}: must be a mapping with the keys {', '.join(DEFAULTS_KEYS)}"]
    problems = [
        f"{where}.{k}: unknown key (an experiment's defaults hold {', '.join(DEFAULTS_KEYS)})"
        for k in defaults
        if k not in DEFAULTS_KEYS
    ]
    variants = exp.get("variants")
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        return out, problems  # the schema names what is wrong with the variants

    sweep = defaults.get("sweep")
    if "sweep" in defaults:
        if not isinstance(sweep, dict) or not sweep or not all(isinstance(v, list) and v for v in sweep.values()):
            problems.append(f"{where}.sweep: must be a mapping of dotted path → non-empty list of values")
        elif all("sweep" in v for v in variants):
            problems.append(f"{where}.sweep: every variant of experiment {name!r} sets its own sweep; none takes this")

    method_params = defaults.get("method_params", {})
    if not isinstance(method_params, dict):
        problems.append(f"{where}.method_params: must be a mapping of method → params")
        method_params = {}
    used = {_method_name(m) for v in variants if isinstance(v.get("method"), list) for m in v["method"]}
    for method, params in method_params.items():
        w = f"{where}.method_params.{method}"
        if method not in used:
            names = ", ".join(sorted(n for n in used if n)) or "none"
            problems.append(f"{w}: no variant of experiment {name!r} uses method {method!r} (its methods: {names})")
        elif not isinstance(params, dict):
            problems.append(f"{w}: must be a mapping of {method!r} params")
        elif method in METHODS:  # an unknown method is reported, with its variant, when the runs are resolved
            fields = METHODS[method].Params.model_fields
            problems += [f"{w}.{k}: not a parameter of method {method!r}" for k in params if k not in fields]
    if problems:
        return out, problems

    def entry_with_defaults(entry: Any) -> Any:
        method = _method_name(entry)
        if method not in method_params:
            return entry
        return _fill({"name": entry} if isinstance(entry, str) else entry, method_params[method])

    out["variants"] = []
    for variant in variants:
        variant = dict(variant)
        if "sweep" in defaults and "sweep" not in variant:
            variant["sweep"] = copy.deepcopy(sweep)
        if isinstance(variant.get("method"), list):
            variant["method"] = [entry_with_defaults(m) for m in variant["method"]]
        out["variants"].append(variant)
    return out, []


def apply_overlay(base: dict[str, Any], overlay: dict[str, Any], source: str = "overlay") -> dict[str, Any]:
    """The full config `base` with `overlay`'s changes (see the module docstring); `include` is not read here."""
    problems = _unknown_keys(
        overlay, (*TOP_KEYS, "experiments"), "<top level>", "an overlay changes budgets, seeds, env lists and sizes"
    )
    if not isinstance(overlay, dict):
        raise WorkflowConfigError(f"{source}: " + problems[0])
    cfg = copy.deepcopy(base)
    method_params = overlay.get("method_params", "paper")
    if method_params not in METHOD_PARAM_SETS:
        problems.append(f"method_params: {method_params!r} is not one of {', '.join(METHOD_PARAM_SETS)}")
    for key in ("name", "description"):
        if key in overlay:
            cfg[key] = overlay[key]
    for key in ("run", "train", "stats", "estimate", "container"):
        if key in overlay:
            if key == "run":
                problems += _run_problems(overlay["run"], "run")
                cfg["run"] = _merge_run(cfg.get("run"), overlay["run"])
            else:
                cfg[key] = deep_merge(cfg.get(key, {}), overlay[key])
    experiments = overlay.get("experiments") or {}
    if not isinstance(experiments, dict):
        problems.append("experiments: must be a mapping of experiment name → overrides")
        experiments = {}
    base_experiments = cfg.get("experiments") or {}
    problems += [
        f"experiments.{name}: not an experiment of the included config (an overlay adds none)"
        for name in experiments
        if name not in base_experiments
    ]
    smoke = method_params == "smoke"
    for name, exp in base_experiments.items():
        cfg["experiments"][name], exp_problems = _overlay_experiment(
            name, exp, experiments.get(name, {}), smoke, f"experiments.{name}"
        )
        problems += exp_problems
    if "experiments_only" in overlay:
        problems += _keep_only(cfg, overlay["experiments_only"])
    if problems:
        raise WorkflowConfigError(f"{source}: invalid overlay\n  " + "\n  ".join(problems))
    return cfg


def _keep_only(cfg: dict[str, Any], names: Any) -> list[str]:
    """Drop every experiment not in `names`, and every figure that reads a dropped one (in place)."""
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return ["experiments_only: must be a non-empty list of experiment names"]
    unknown = [n for n in names if n not in cfg["experiments"]]
    if unknown:
        known = ", ".join(cfg["experiments"])
        return [f"experiments_only: {', '.join(map(repr, unknown))} not an experiment of the included config ({known})"]
    cfg["experiments"] = {n: e for n, e in cfg["experiments"].items() if n in names}
    default_ref = ((cfg.get("stats") or {}).get("reference") or {}).get("experiment")

    def reads(fig: dict[str, Any]) -> set[str]:
        ref = (fig.get("reference") or {}).get("experiment") or default_ref
        return {fig.get("experiment"), *([ref] if ref else [])}

    cfg["figures"] = {k: f for k, f in (cfg.get("figures") or {}).items() if reads(f) <= set(names)}
    return []


def _read(path: Path) -> Any:
    if not path.is_file():
        raise WorkflowConfigError(f"{path}: config file not found")
    try:
        # JSON is parsed as JSON: PyYAML (YAML 1.1) would read floats like 1e-06 as strings.
        return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise WorkflowConfigError(f"{path}: cannot parse: {err}") from None


def resolve_includes(cfg: Any, base_dir: Path, source: str = "config", _seen: tuple[Path, ...] = ()) -> Any:
    """A config with `include: <file>` → that file (itself resolved) with `cfg` applied as an overlay.

    `<file>` is relative to `base_dir` (the including file's directory). A config without `include` is returned
    with its experiments' `defaults` expanded (`expand_defaults`), so full configs and overlays load through the
    same call and an overlay applies to variants written out."""
    if not isinstance(cfg, dict) or "include" not in cfg:
        return expand_defaults(cfg, source)
    include = cfg["include"]
    if not isinstance(include, str) or not include:
        raise WorkflowConfigError(f"{source}: include: must be a file name, got {include!r}")
    path = (Path(base_dir) / include).resolve()
    if path in _seen:
        raise WorkflowConfigError(f"{source}: include: {include!r} includes itself ({' → '.join(map(str, _seen))})")
    if not path.is_file():
        raise WorkflowConfigError(f"{source}: include: {include!r} not found (looked for {path})")
    base = resolve_includes(_read(path), path.parent, str(path), (*_seen, path))
    if not isinstance(base, dict):
        raise WorkflowConfigError(f"{path}: top level must be a mapping")
    return apply_overlay(base, cfg, source)


def load_workflow_config(path: str | Path) -> Any:
    """A workflow config file (YAML, or JSON with `.json`), with its `include` chain resolved."""
    path = Path(path)
    return resolve_includes(_read(path), path.resolve().parent, str(path), (path.resolve(),))
