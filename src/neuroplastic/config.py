"""Typed run configuration: its shape, and its identity.

A run config is the complete description of one training run. This module knows its shape (`RunConfig`:
keys, types, shorthands) and its id (`canonical_json`, `run_id`); it imports no agent, method or env
registry. `neuroplastic.runs.resolve` validates a config against those registries (the agent's and every
method's own parameter model, the env id) and fills every default, so two configs that mean the same run
serialise to the same canonical JSON and get the same id.
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
    PrivateAttr,
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
    # The typed params of the agent and of each method, validated once by `neuroplastic.runs.resolve`; `agent`
    # and `method` above are their JSON form (what the run id hashes).
    _agent_params: BaseModel | None = PrivateAttr(None)
    _method_params: list[BaseModel] | None = PrivateAttr(None)

    def set_typed_params(self, agent: BaseModel, methods: list[BaseModel]) -> None:
        self._agent_params, self._method_params = agent, list(methods)

    def typed_params(self) -> tuple[BaseModel, list[BaseModel]]:
        """Copies of the agent's and the methods' typed params (each run built from this config owns its own)."""
        if self._agent_params is None or self._method_params is None:
            raise ConfigError("run config is not resolved: build runs from `neuroplastic.runs.resolve`'s result")
        return self._agent_params.model_copy(deep=True), [p.model_copy(deep=True) for p in self._method_params]

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


def format_pydantic(err: ValidationError, prefix: str = "") -> list[str]:
    """One `key: message` line per pydantic error, keys prefixed with `prefix`."""
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


def parse(data: Any, source: str = "config") -> RunConfig:
    """The run config's shape: keys, types and shorthands (`agent: td3`, `method: ne`). Agent and method
    parameters, the env id and the cross-section rules are checked one layer up (`neuroplastic.runs.resolve`),
    where every registry is known. Raises `ConfigError` naming every offending key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid run config\n  " + "\n  ".join(format_pydantic(err))) from None


def read(path: str | Path) -> Any:
    """The parsed contents of a YAML or JSON run config file (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot parse: {err}") from None


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
