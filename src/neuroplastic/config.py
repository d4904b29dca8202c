"""Typed run configuration.

A run config is the complete description of one training run. It is loaded from YAML or JSON, validated
against typed models (the agent's and every method's own parameter model), and *resolved*: every default is
filled in, so two configs that mean the same run serialise to the same canonical JSON and get the same id.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A config that cannot be trained. The message names every offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_assignment=True)


class RunConfig(_Strict):
    """Top-level keys of a run config (see `config/README.md`)."""

    agent: dict[str, Any] = Field(description="Agent name and hyperparameters: `td3` or `{name: td3, ...}`.")
    env: str = Field(description="Environment id, e.g. `Hopper-v4`, `dmc:cheetah-run`, `dmc-pixels:walker-walk`.")
    env_options: dict[str, Any] = Field(
        default_factory=dict,
        description="DMC env options (episode_frames, action_repeat, frame_stack, size, camera); gymnasium: none.",
    )
    seed: int = Field(0, ge=0, description="Seeds python, numpy, torch, the env, its action space and the eval env.")
    steps: int = Field(gt=0, description="Total environment steps.")
    start_steps: int = Field(25_000, ge=0, description="Uniform-random actions before the first update.")
    eval_every: int = Field(5_000, gt=0, description="Env steps between evaluations.")
    eval_episodes: int = Field(10, gt=0, description="Deterministic episodes per evaluation.")
    log_every: int = Field(5_000, gt=0, description="Env steps between loss/plasticity metric rows.")
    metrics_batch: int = Field(256, gt=0, description="Replay batch size for plasticity metrics.")
    checkpoint_every: int = Field(50_000, ge=0, description="Env steps between checkpoints (0 = never checkpoint).")
    method: list[dict[str, Any]] = Field(
        default_factory=list, description="Interventions applied to the agent, in order; empty = plain agent."
    )

    @model_validator(mode="before")
    @classmethod
    def _normalise_shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        agent = data.get("agent")
        if isinstance(agent, str):
            data["agent"] = {"name": agent}
        method = data.get("method", [])
        if method is None or method == "none":
            method = []
        elif isinstance(method, str):
            method = [{"name": method}]
        elif isinstance(method, dict):
            method = [method]
        elif isinstance(method, list):
            method = [{"name": m} if isinstance(m, str) else m for m in method]
        data["method"] = [m for m in method if not (isinstance(m, dict) and m.get("name") == "none")]
        return data


def _format_pydantic(err: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{key}: {msg}")
    return lines


def _resolve_entry(kind: str, index: str, entry: Any, registry: dict[str, Any]) -> tuple[dict | None, list]:
    """Validate one `{name: ..., **params}` mapping against the registry's parameter model."""
    where = f"{kind}{index}"
    if not isinstance(entry, dict):
        return None, [f"{where}: expected a mapping with a `name` key, got {type(entry).__name__}"]
    name = entry.get("name")
    if name is None:
        return None, [f"{where}.name: required key is missing"]
    if name not in registry:
        known = ", ".join(sorted(registry))
        return None, [f"{where}.name: unknown {kind} {name!r} (known: {known})"]
    params_model = registry[name].Params
    params = {k: v for k, v in entry.items() if k != "name"}
    try:
        resolved = params_model.model_validate(params).model_dump(mode="json")
    except ValidationError as err:
        return None, _format_pydantic(err, prefix=f"{where}.")
    return {"name": name, **resolved}, []


def resolve(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate and fill defaults. Raises `ConfigError` naming every offending key."""
    from neuroplastic.agents import AGENTS
    from neuroplastic.envs import env_id_problem
    from neuroplastic.methods import METHODS

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid run config\n  " + "\n  ".join(_format_pydantic(err))) from None

    problems: list[str] = []
    agent, errs = _resolve_entry("agent", "", cfg.agent, AGENTS)
    problems += errs
    methods = []
    for i, m in enumerate(cfg.method):
        resolved, errs = _resolve_entry("method", f"[{i}]", m, METHODS)
        problems += errs
        if resolved is not None:
            methods.append(resolved)
    env_problem = env_id_problem(cfg.env, cfg.env_options)
    if env_problem:
        problems.append(f"env: {env_problem}")
    if agent is not None and not problems:
        cls = AGENTS[agent["name"]]
        for m in methods:
            method_cls = METHODS[m["name"]]
            supported = getattr(method_cls, "agents", None)
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
    return cfg


def load(path: str | Path) -> RunConfig:
    """Read a YAML or JSON run config and resolve it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot parse: {err}") from None
    return resolve(data, source=str(path))


def canonical_json(cfg: RunConfig) -> str:
    data = cfg.model_dump(mode="json")
    # Keys added after the first runs are left out at their empty default, so earlier run ids stay valid.
    if not data.get("env_options"):
        data.pop("env_options", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def run_id(cfg: RunConfig) -> str:
    """Short content hash of the resolved config: the same run always gets the same id."""
    return hashlib.sha256(canonical_json(cfg).encode()).hexdigest()[:12]
