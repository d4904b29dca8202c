"""A run config checked against every registry, and the run's env.

`config` knows the run config's shape and imports no registry; this layer sits above it and above the agent,
method and env registries. `resolve` validates a config once: its shape (`config.parse`), the agent's and every
method's own parameter model (defaults filled in), the env id, the `cycle:` and `probe:` sections, and the rules
that span two registries (a method for an agent it does not apply to, an agent on the wrong kind of env). Every
problem is reported with the key it concerns, before anything is built. `make_training_env` builds the env of a
resolved config (the continual `cycling` env from its `cycle:` mapping).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from neuroplastic import cycling, envs, presets, probes
from neuroplastic.agents import AGENTS
from neuroplastic.config import CYCLING_ENV_ID, ConfigError, RunConfig, format_pydantic, parse, read
from neuroplastic.methods import METHODS


def _resolve_entry(
    kind: str, index: str, entry: Any, registry: dict[str, Any]
) -> tuple[BaseModel | None, dict | None, list[str]]:
    """Validate one `{name: ..., **params}` mapping against the registry's parameter model: the typed params,
    their JSON form with the name, and the problems."""
    where = f"{kind}{index}"
    if not isinstance(entry, dict):
        return None, None, [f"{where}: expected a mapping with a `name` key, got {type(entry).__name__}"]
    name = entry.get("name")
    if name is None:
        return None, None, [f"{where}.name: required key is missing"]
    if name not in registry:
        known = ", ".join(sorted(registry))
        return None, None, [f"{where}.name: unknown {kind} {name!r} (known: {known})"]
    params = {k: v for k, v in entry.items() if k != "name"}
    try:
        typed = registry[name].Params.model_validate(params)
    except ValidationError as err:
        return None, None, format_pydantic(err, prefix=f"{where}.")
    return typed, {"name": name, **typed.model_dump(mode="json")}, []


def resolve(data: Any, source: str = "config") -> RunConfig:
    """Validate and fill defaults (a `preset:` first fills the keys it names). Raises `ConfigError` naming every
    offending key."""
    if isinstance(data, dict):
        try:
            data = presets.apply(data)
        except presets.PresetError as err:
            raise ConfigError(f"{source}: invalid run config\n  {err}") from None
    cfg = parse(data, source)
    problems: list[str] = []
    agent_params, agent, errs = _resolve_entry("agent", "", cfg.agent, AGENTS)
    problems += errs
    methods, method_params = [], []
    for i, m in enumerate(cfg.method):
        typed, resolved, errs = _resolve_entry("method", f"[{i}]", m, METHODS)
        problems += errs
        if typed is not None and resolved is not None:
            methods.append(resolved)
            method_params.append(typed)
    env_problem = envs.env_id_problem(cfg.env, cfg.env_options)
    if env_problem:
        problems.append(f"env: {env_problem}")
    problems += _cycle_problems(cfg)
    if cfg.probe is not None and agent is not None:
        problems += [f"probe: {p}" for p in probes.config_problems(cfg, agent)]
    if agent is not None and not problems:
        cls = AGENTS[agent["name"]]
        if cfg.update_schedule != "step" and cls.on_policy:
            problems.append(
                f"update_schedule: {cfg.update_schedule!r} needs an off-policy agent, not {agent['name']!r}"
            )
        for m in methods:
            supported = METHODS[m["name"]].agents
            if supported is not None and agent["name"] not in supported:
                problems.append(
                    f"method: {m['name']!r} does not apply to agent {agent['name']!r} "
                    f"(supports {', '.join(sorted(supported))})"
                )
        problems += [f"agent: {p}" for p in cls.config_problems(cfg, agent)]
    if problems:
        raise ConfigError(f"{source}: invalid run config\n  " + "\n  ".join(problems))
    cfg.agent = agent
    cfg.method = methods
    cfg.set_typed_params(agent_params, method_params)
    return cfg


def _cycle_problems(cfg: RunConfig) -> list[str]:
    if cfg.env != CYCLING_ENV_ID:
        if cfg.cycle is not None:
            return [f"cycle: only valid with env {CYCLING_ENV_ID!r} (env is {cfg.env!r})"]
        return []
    if cfg.cycle is None:
        return [f"cycle: required key is missing (env {CYCLING_ENV_ID!r} needs a `cycle:` mapping)"]
    problems = [f"cycle.{p}" for p in cycling.cycle_config_problems(cfg.cycle)]
    if problems:
        return problems
    if cfg.cycle.mode == "steps" and cfg.cycle.cycles is None:
        # Resolved so that an omitted and a spelled-out `cycles: 1` are the same run (same id).
        cfg.cycle.cycles = 1
    total = cfg.cycle.total_steps
    if total is not None and cfg.steps != total:
        c = cfg.cycle
        problems.append(
            f"steps: must equal len(cycle.tasks)·cycle.phase_steps·cycle.cycles = "
            f"{len(c.tasks)}·{c.phase_steps}·{c.cycles} = {total}, got {cfg.steps}"
        )
    return problems


def load(path: str | Path) -> RunConfig:
    """Read a YAML or JSON run config and resolve it."""
    return resolve(read(path), source=str(path))


def make_training_env(cfg: RunConfig) -> envs.TrainingEnv:
    """The env of run config `cfg`, seeded with `cfg.seed` (not yet reset by the caller's seed)."""
    if cfg.env == CYCLING_ENV_ID:
        return cycling.CyclingTrainingEnv(cfg.cycle, cfg.seed)
    return envs.TrainingEnv(envs.make_env(cfg.env, cfg.seed, cfg.env_options), cfg.env, cfg.env_options)
