"""Named hyperparameter presets: a run config's `preset:` key stands for a published protocol.

`td3_paper` is the protocol of the TD3 authors' published learning curves (the repository's first commit,
sfujim/TD3 32c6d47, and its `run_experiments.sh`; the curves are shipped as the `td3_author_curves` reference):
actor and critic 400-300, Adam lr 1e-3, batch 100, uniform-random start steps 1,000 for Hopper and Walker2d and
10,000 for HalfCheetah and Ant, and updates at the end of each episode, as many as the episode had steps
(`update_schedule: episode_end`). The other TD3 settings (γ, τ, noises, policy delay) are our defaults already,
and a time-limit end never ends bootstrapping in our loop. docs/deviations.md, "TD3 paper preset", lists what
still differs.

A preset fills only what the run config leaves unset: `{preset: td3_paper, agent: {hidden: 64}}` is the preset with
narrow networks. `apply` resolves it into plain keys, so the resolved config (and its run id) is the same as that
of the same settings written out, and `preset` is not part of it. In a workflow config, an experiment or variant
`run:` that names a preset takes it in place of the config's top-level `run:` defaults for the keys the preset sets
(`without_preset_keys`); its own `run:` keys still refine it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    agent: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)
    # start_steps per task (the env id without its version); an env not listed needs an explicit start_steps.
    start_steps: dict[str, int] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "td3_paper": Preset(
        agent={"name": "td3", "critic": "td3", "hidden": [400, 300], "lr": 1e-3, "batch_size": 100},
        run={"update_schedule": "episode_end"},
        start_steps={"Hopper": 1_000, "Walker2d": 1_000, "HalfCheetah": 10_000, "Ant": 10_000},
    ),
}


class PresetError(ValueError):
    """An unknown preset, or a run config the preset cannot complete. The message names the key."""


def _preset(name: Any) -> Preset:
    if name not in PRESETS:
        raise PresetError(f"preset: unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name]


def _agent_of(agent: Any) -> dict[str, Any]:
    return {"name": agent} if isinstance(agent, str) else dict(agent or {})


def apply(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with its `preset:` resolved into the keys it leaves unset (a copy; unchanged without a preset)."""
    if "preset" not in data:
        return data
    data = dict(data)
    name = data.pop("preset")
    preset = _preset(name)
    agent = _agent_of(data.get("agent"))
    if agent.get("name", preset.agent["name"]) != preset.agent["name"]:
        raise PresetError(f"preset: {name!r} is a preset of agent {preset.agent['name']!r}, not {agent['name']!r}")
    data["agent"] = {**preset.agent, **agent}
    for key, value in preset.run.items():
        data.setdefault(key, value)
    if preset.start_steps and "start_steps" not in data:
        task = str(data.get("env", "")).split("-v")[0]
        if task not in preset.start_steps:
            known = ", ".join(preset.start_steps)
            raise PresetError(
                f"preset: {name!r} has start_steps for {known} only; env {data.get('env')!r} needs start_steps"
            )
        data["start_steps"] = preset.start_steps[task]
    return data


def without_preset_keys(run: dict[str, Any], name: Any) -> dict[str, Any]:
    """A workflow config's top-level `run:` defaults without the keys preset `name` sets (the agent's name stays)."""
    preset = _preset(name)
    out = {k: v for k, v in run.items() if k not in preset.run and not (k == "start_steps" and preset.start_steps)}
    if "agent" in out:
        out["agent"] = {k: v for k, v in _agent_of(out["agent"]).items() if k == "name" or k not in preset.agent}
    return out
