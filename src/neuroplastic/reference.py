"""Published reference results, shipped as package data (`neuroplastic/data/reference/`, see its README.md).

Each reference source is described in `sources.json`: where the numbers come from, and the protocol they were
measured under (env version, hyperparameters, what "return" means, seeds). Besides Ma et al.'s Table 1 (a table of
methods, `ma_table1()`, read by the `reference_table` kind) three kinds exist:
- `curve`: mean ± std across seeds at many x (DrQ-v2's official curves, summarised here from the per-seed file);
- `seeds`: one curve per seed (the TD3 authors' learning curves, every 5k steps to 1M, 10 seeds); `band(name, env)`
  summarises them per step as median, interquartile range and min-max;
- `endpoint`: one published number per task at the end of training (TD3: Table 1, the authors' curves at 1M,
  CleanRL).

`points(name, env)` gives a source's numbers for one of our env ids in our step units (agent steps: DMC frames are
divided by the action repeat) as mean ± std across seeds, `protocol_notes(name, env)` the ways its protocol differs
from a run of ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"
SOURCES_JSON = REFERENCE_DIR / "sources.json"
DRQV2_PER_SEED = REFERENCE_DIR / "drqv2_dmc_per_seed.csv"
DRQV2_SUMMARY = REFERENCE_DIR / "drqv2_dmc.csv"
POINT_COLUMNS = ["step", "mean", "std", "n_seeds"]
BAND_COLUMNS = ["step", "median", "q25", "q75", "min", "max", "n_seeds"]
SEED_COLUMNS = ["env", "seed", "step", "eval_return"]


class ReferenceError(ValueError):
    """An unknown reference source, or a data file that does not match its description."""


@dataclass(frozen=True)
class Source:
    name: str
    label: str
    kind: str  # "curve" | "seeds" | "endpoint" | "table"
    file: str
    source: str
    env_version: str
    hyperparameters: str
    returns: str
    seeds: str
    frames_per_step: int = 1


@cache
def sources() -> dict[str, Source]:
    raw = json.loads(SOURCES_JSON.read_text())
    out = {}
    for name, s in raw.items():
        out[name] = Source(
            name=name,
            label=s["label"],
            kind=s["kind"],
            file=s["file"],
            source=s["source"],
            env_version=s["env_version"],
            hyperparameters=s["hyperparameters"],
            returns=s["return"],
            seeds=str(s["seeds"]),
            frames_per_step=int(s.get("frames_per_step", 1)),
        )
    return out


def source(name: str) -> Source:
    known = sources()
    if name not in known:
        raise ReferenceError(f"unknown reference {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


def task_of(env_id: str) -> str | None:
    """The reference files' task key for one of our env ids: `HalfCheetah-v4` → `HalfCheetah`,
    `dmc-pixels:cheetah-run` → `cheetah_run`; None for envs no reference covers (state DMC, cycling)."""
    if env_id.startswith("dmc-pixels:"):
        return env_id.split(":", 1)[1].replace("-", "_")
    if ":" in env_id or "-v" not in env_id:
        return None
    return env_id.rsplit("-v", 1)[0]


def summarise_per_seed(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per (task, frame): number of seeds, mean and std across seeds. The std is the population std (ddof 0),
    the convention of the summary numbers (mean ± std over seeds of the official `curves/`, facebookresearch/drqv2)."""
    grouped = per_seed.groupby(["task", "frame"], sort=True)["episode_reward"]
    out = grouped.agg(n_seeds="count", mean="mean", std=lambda v: float(np.std(v.to_numpy(), ddof=0)))
    out = out.reset_index()
    out["mean"] = out["mean"].round(2)
    out["std"] = out["std"].round(2)
    return out[["task", "frame", "n_seeds", "mean", "std"]]


def write_drqv2_summary(path: Path = DRQV2_SUMMARY) -> Path:
    """Regenerate the shipped DrQ-v2 summary from the shipped per-seed transcription."""
    summary = summarise_per_seed(pd.read_csv(DRQV2_PER_SEED))
    path.write_text(summary.to_csv(index=False, lineterminator="\n"))
    return path


@cache
def _table(file: str) -> pd.DataFrame:
    path = REFERENCE_DIR / file
    if not path.is_file():
        raise ReferenceError(f"reference data file {path} is missing")
    return pd.read_csv(path)


def per_seed(name: str, env_id: str) -> pd.DataFrame:
    """A `seeds` source's curves for `env_id`: columns step (our agent steps), seed, value; empty when the source
    does not cover that env."""
    src = source(name)
    if src.kind != "seeds":
        raise ReferenceError(f"reference {name!r} has no per-seed curves (kind {src.kind!r})")
    table = _table(src.file)
    missing = sorted(set(SEED_COLUMNS) - set(table.columns))
    if missing:
        raise ReferenceError(f"reference data file {src.file} lacks the columns {', '.join(missing)}")
    task = task_of(env_id)
    rows = table[table["env"].map(task_of) == task] if task is not None else table.iloc[:0]
    return pd.DataFrame(
        {
            "step": rows["step"].to_numpy(dtype=np.int64) // src.frames_per_step,
            "seed": rows["seed"].to_numpy(dtype=np.int64),
            "value": rows["eval_return"].to_numpy(dtype=np.float64),
        }
    ).reset_index(drop=True)


def band(name: str, env_id: str) -> pd.DataFrame:
    """Per step of a `seeds` source: median, quartiles (numpy's linear interpolation), min, max and the number of
    seeds; empty when the source does not cover `env_id`."""
    seeds = per_seed(name, env_id)
    if seeds.empty:
        return pd.DataFrame(columns=BAND_COLUMNS)
    out = []
    for step, values in seeds.groupby("step", sort=True)["value"]:
        v = values.to_numpy()
        q25, median, q75 = np.quantile(v, [0.25, 0.5, 0.75])
        out.append([int(step), median, q25, q75, v.min(), v.max(), len(v)])
    return pd.DataFrame(out, columns=BAND_COLUMNS)


def points(name: str, env_id: str) -> pd.DataFrame:
    """The source's numbers for `env_id` as columns step (our agent steps), mean, std across seeds (ddof 0; NaN if
    unpublished), n_seeds; empty when the source does not cover that env."""
    src = source(name)
    if src.kind == "table":
        raise ReferenceError(f"reference {name!r} is a table of methods, not points of one curve")
    if src.kind == "seeds":
        grouped = per_seed(name, env_id).groupby("step", sort=True)["value"]
        out = grouped.agg(mean="mean", std=lambda v: float(np.std(v.to_numpy(), ddof=0)), n_seeds="count")
        return out.reset_index()[POINT_COLUMNS].astype({"step": np.int64, "n_seeds": np.int64})
    task = task_of(env_id)
    table = _table(src.file)
    if task is None:
        return pd.DataFrame(columns=POINT_COLUMNS)
    if src.kind == "curve":
        rows = table[table["task"] == task]
        steps = rows["frame"].to_numpy() // src.frames_per_step
    else:
        rows = table[(table["source"] == name) & (table["task"] == task)]
        steps = rows["step"].to_numpy()
    return pd.DataFrame(
        {
            "step": steps.astype(np.int64),
            "mean": rows["mean"].to_numpy(dtype=np.float64),
            "std": rows["std"].to_numpy(dtype=np.float64),
            "n_seeds": rows["n_seeds"].to_numpy(dtype=np.int64),
        }
    ).reset_index(drop=True)


def ma_table1() -> dict[str, dict[str, tuple[float, float]]]:
    """Ma et al.'s Table 1 as task → column → (mean, std) (the `reference_table` kind reads it)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for r in _table(source("ma2024_table1").file).itertuples():
        out.setdefault(r.task, {})[r.column] = (float(r.mean), float(r.std))
    return out


def _env_version(env_id: str) -> str:
    return env_id.rsplit("-", 1)[-1] if "-v" in env_id and ":" not in env_id else env_id


def protocol_notes(name: str, env_id: str) -> list[str]:
    """Short sentences, drawn on the figure, on how the reference was measured and where that differs from us."""
    src = source(name)
    notes = [f"{src.label}: {src.hyperparameters}; {src.returns}; {src.seeds} seeds"]
    ours = _env_version(env_id)
    if src.env_version.startswith("v") and ours != src.env_version:
        notes.append(f"protocol differs: reference on {src.env_version} envs, ours on {ours}")
    if "training" in src.returns:
        notes.append("protocol differs: reference is the training return, ours the deterministic evaluation")
    if src.kind == "endpoint":
        notes.append("reference is an endpoint (end of training), not a curve")
    return notes


def describe(name: str) -> dict[str, Any]:
    """The source's metadata as a plain dict (tables print it)."""
    src = source(name)
    return {
        "label": src.label,
        "kind": src.kind,
        "source": src.source,
        "env_version": src.env_version,
        "hyperparameters": src.hyperparameters,
        "return": src.returns,
        "seeds": src.seeds,
    }
