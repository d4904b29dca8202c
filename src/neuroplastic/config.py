"""Typed run configuration.

A run config is the complete description of one training run. It is loaded from YAML or JSON, validated
against typed models (the agent's and every method's own parameter model), and *resolved*: every default is
filled in, so two configs that mean the same run serialise to the same canonical JSON and get the same id.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)


class ConfigError(ValueError):
    """A config that cannot be trained. The message names every offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_assignment=True)


# --- continual (cycling) env: the `cycle:` mapping; only valid with `env: cycling` (see cycling.py) ---------
# The one definition of the cycling env's id (envs, cycling and the figures import it).
CYCLING_ENV_ID = "cycling"
DEFAULT_CYCLE_TASKS = ("HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4")


class CycleConfig(_Strict):
    """One agent trained on several MuJoCo tasks in sequence (docs/deviations.md, "Cycling")."""

    tasks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CYCLE_TASKS), min_length=2, description="MuJoCo ids, in phase order."
    )
    mode: Literal["steps", "episodes"] = Field(
        "steps", description="`steps`: a phase is `phase_steps` env steps; `episodes`: `phase_episodes` episodes."
    )
    phase_steps: int | None = Field(None, gt=0, description="Env steps per phase (mode `steps`).")
    phase_episodes: int | None = Field(None, gt=0, description="Episodes per phase (mode `episodes`).")
    cycles: int | None = Field(
        None, gt=0, description="Repetitions of the task sequence (mode `steps`; default 1). `steps` must match."
    )
    io: Literal["padded", "per_task"] = Field(
        "padded", description="`padded`: zero-pad obs/actions to the largest dims; `per_task` is not implemented."
    )
    eval_max_episode_steps: int | None = Field(
        None, gt=0, description="Cap on evaluation episode length (smoke budgets only); None = the task's limit."
    )

    @property
    def total_steps(self) -> int | None:
        """The env steps the schedule spans (mode `steps`); None for mode `episodes`."""
        if self.mode != "steps" or self.phase_steps is None or self.cycles is None:
            return None
        return len(self.tasks) * self.phase_steps * self.cycles


class ProbeConfig(_Strict):
    """The Fig. 4 forgetting probe (neuroplastic.probes; docs/deviations.md, "Fig. 4 forgetting probe")."""

    early_fraction: float = Field(
        0.1, gt=0.0, le=1.0, description="The early window: this fraction of the env steps after start_steps."
    )
    transitions: int = Field(
        1000, gt=0, description="At most this many transitions of the early window, frozen for TD error and Q."
    )
    states: int = Field(
        5, gt=0, description="At most this many env states of the early window to start probe episodes from."
    )
    episode_steps: int = Field(1000, gt=0, description="Longest probe episode (env steps from a saved state).")


class RunConfig(_Strict):
    """Top-level keys of a run config (see `config/README.md`)."""

    agent: dict[str, Any] = Field(description="Agent name and hyperparameters: `td3` or `{name: td3, ...}`.")
    env: str = Field(description="Environment id, e.g. `Hopper-v4`, `dmc:cheetah-run`, `dmc-pixels:walker-walk`.")
    env_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "DMC env options (episode_frames, action_repeat, frame_stack, size, camera); MuJoCo: contact_margin: max."
        ),
    )
    seed: int = Field(0, ge=0, description="Seeds python, numpy, torch, the env, its action space and the eval env.")
    steps: int = Field(gt=0, description="Total environment steps.")
    start_steps: int = Field(25_000, ge=0, description="Uniform-random actions before the first update.")
    eval_every: int = Field(5_000, gt=0, description="Env steps between evaluations.")
    eval_episodes: int = Field(10, gt=0, description="Deterministic episodes per evaluation.")
    log_every: int = Field(5_000, gt=0, description="Env steps between loss/plasticity metric rows.")
    metrics_batch: int = Field(256, gt=0, description="Replay batch size for plasticity metrics.")
    checkpoint_every: int = Field(50_000, ge=0, description="Env steps between checkpoints (0 = never checkpoint).")
    update_schedule: Literal["step", "episode_end"] = Field(
        "step",
        description="`step`: the updates of env step t right after it; `episode_end`: the same updates, all at the "
        "end of the episode (the TD3 paper's protocol; loop.py).",
    )
    method: list[dict[str, Any]] = Field(
        default_factory=list, description="Interventions applied to the agent, in order; empty = plain agent."
    )
    cycle: CycleConfig | None = Field(None, description="Task schedule of `env: cycling`; only valid with it.")
    probe: ProbeConfig | None = Field(None, description="Fig. 4 forgetting probe; None (default) = off.")

    @model_serializer(mode="wrap")
    def _drop_unset_sections(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Runs without these optional sections serialise exactly as before the keys existed: run ids are unchanged.
        data = handler(self)
        for key in ("cycle", "probe"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

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
    from neuroplastic.presets import PresetError
    from neuroplastic.presets import apply as apply_preset

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        data = apply_preset(data)
    except PresetError as err:
        raise ConfigError(f"{source}: invalid run config\n  {err}") from None
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
    problems += _cycle_problems(cfg)
    if cfg.probe is not None and agent is not None:
        from neuroplastic.probes import config_problems as probe_problems

        problems += [f"probe: {p}" for p in probe_problems(cfg, agent)]
    if agent is not None and not problems:
        cls = AGENTS[agent["name"]]
        if cfg.update_schedule != "step" and cls.on_policy:
            problems.append(
                f"update_schedule: {cfg.update_schedule!r} needs an off-policy agent, not {agent['name']!r}"
            )
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


def _cycle_problems(cfg: RunConfig) -> list[str]:
    from neuroplastic.cycling import cycle_config_problems

    if cfg.env != CYCLING_ENV_ID:
        if cfg.cycle is not None:
            return [f"cycle: only valid with env {CYCLING_ENV_ID!r} (env is {cfg.env!r})"]
        return []
    if cfg.cycle is None:
        return [f"cycle: required key is missing (env {CYCLING_ENV_ID!r} needs a `cycle:` mapping)"]
    problems = [f"cycle.{p}" for p in cycle_config_problems(cfg.cycle)]
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
    if data.get("update_schedule") == "step":
        data.pop("update_schedule")
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def run_id(cfg: RunConfig) -> str:
    """Short content hash of the resolved config: the same run always gets the same id."""
    return hashlib.sha256(canonical_json(cfg).encode()).hexdigest()[:12]
