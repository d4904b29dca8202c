"""Run directories → tidy tables, one set per experiment.

Input: the experiment table written by the workflow (`results/tables/<config>/<experiment>.json`: one member per
run with experiment, label, variant, env, seed, run id and tags) and the run directories. Only declared runs are
read. Every declared run must be complete: a missing `done`, a missing or unreadable `metrics.parquet`, a row
count that disagrees with `done`, a config that is not the declared run's, or fewer evaluations than the run's
budget implies, is an `AggregationError` that names the run. Nothing is ever averaged over fewer seeds.

Outputs (parquet + CSV copies, deterministic row order):
- `curves`: experiment, label, variant, env, seed, run_id, tag_<k>..., step, metric, value (every logged metric);
- `final`: the same keys, metric, value = mean of the last `final_fraction` of that metric's logged points
  (at least one), n_points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from neuroplastic import runlog
from neuroplastic.config import ConfigError, parse, run_id

KEY_COLUMNS = ["experiment", "label", "variant", "env", "seed", "run_id"]


class AggregationError(RuntimeError):
    pass


def _describe(member: dict[str, Any]) -> str:
    return (
        f"run {member['run_id']} (experiment {member['experiment']}, {member['variant']}, "
        f"env {member['env']}, seed {member['seed']})"
    )


def read_run(run_dir: Path, member: dict[str, Any]) -> pd.DataFrame:
    """The checked long metrics table (step, metric, value) of one complete run."""
    who = _describe(member)
    done = run_dir / runlog.DONE
    if not done.is_file():
        raise AggregationError(f"{who}: not finished, {done} is missing (train it, or remove it from the config)")
    try:
        done_info = json.loads(done.read_text())
    except json.JSONDecodeError:
        raise AggregationError(f"{who}: {done} is corrupt") from None

    cfg_path = run_dir / runlog.CONFIG_JSON
    try:
        # The stored config is the resolved one: parsing it (no registry, no torch) gives back its run id.
        cfg = parse(json.loads(cfg_path.read_text()), source=str(cfg_path))
    except (OSError, json.JSONDecodeError, ConfigError) as err:
        raise AggregationError(f"{who}: cannot read {cfg_path}: {err}") from None
    if run_id(cfg) != member["run_id"] or done_info.get("run_id") != member["run_id"]:
        raise AggregationError(f"{who}: {run_dir} holds run {run_id(cfg)}, not the declared one")

    parquet = run_dir / runlog.METRICS_PARQUET
    try:
        df = pq.read_table(parquet).to_pandas()
    except Exception as err:  # pyarrow raises several types for truncated/corrupt files
        raise AggregationError(f"{who}: {parquet} is missing or corrupt ({type(err).__name__}: {err})") from None
    if list(df.columns[:3]) != ["step", "metric", "value"]:
        raise AggregationError(f"{who}: {parquet} has columns {list(df.columns)}, expected step, metric, value")
    if "rows" in done_info and len(df) != done_info["rows"]:
        raise AggregationError(
            f"{who}: {parquet} has {len(df)} rows but `done` records {done_info['rows']} (truncated)"
        )
    n_eval = int((df["metric"] == "eval_return").sum())
    expected = cfg.steps // cfg.eval_every
    if n_eval != expected:
        raise AggregationError(
            f"{who}: {n_eval} eval_return points, expected {expected} (steps {cfg.steps} / eval_every "
            f"{cfg.eval_every}); the log is truncated"
        )
    if df["step"].max() > cfg.steps:
        raise AggregationError(f"{who}: log has steps beyond the budget {cfg.steps}")
    return df[["step", "metric", "value"]]


def _tag_columns(members: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """tag_<k> columns; a tag that mixes strings and numbers becomes a string column."""
    keys = sorted({k for m in members for k in m.get("tags", {})})
    cols: dict[str, list[Any]] = {}
    for k in keys:
        vals = [m.get("tags", {}).get(k) for m in members]
        kinds = {type(v) for v in vals if v is not None}
        if len(kinds) > 1 and str in kinds:
            vals = [None if v is None else str(v) for v in vals]
        elif kinds <= {int, float} and float in kinds:
            vals = [None if v is None else float(v) for v in vals]
        cols[f"tag_{k}"] = vals
    return cols


def final_values(curves: pd.DataFrame, final_fraction: float) -> pd.DataFrame:
    """Mean of the last ⌈fraction·n⌉ logged points of every metric of every run."""
    keys = [c for c in curves.columns if c not in ("step", "value")]
    rows = []
    for key, grp in curves.groupby(keys, sort=False, dropna=False):
        grp = grp.sort_values("step")
        n = max(1, math.ceil(final_fraction * len(grp)))
        tail = grp["value"].iloc[-n:]
        rows.append((*key, float(tail.mean()), n, int(grp["step"].iloc[-1])))
    return pd.DataFrame(rows, columns=[*keys, "value", "n_points", "last_step"])


def aggregate_experiment(
    table_path: Path, runs_dir: Path, final_fraction: float = 0.1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = json.loads(Path(table_path).read_text())
    members = table["members"]
    if not members:
        raise AggregationError(f"{table_path}: experiment {table.get('experiment')!r} declares no runs")
    frames = []
    tag_cols = _tag_columns(members)
    for i, member in enumerate(members):
        df = read_run(Path(runs_dir) / member["run_id"], member)
        for col in KEY_COLUMNS:
            df.insert(len(df.columns) - 3, col, member[col])
        for col, vals in tag_cols.items():
            df.insert(len(df.columns) - 3, col, vals[i])
        frames.append(df)
    curves = pd.concat(frames, ignore_index=True)
    curves = curves.sort_values(["label", "variant", "env", "seed", "metric", "step"], kind="stable")
    curves = curves.reset_index(drop=True)
    final = final_values(curves, final_fraction)
    return curves, final


def write_table(df: pd.DataFrame, stem: Path) -> None:
    """`stem`.parquet and `stem`.csv, written deterministically."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(stem.with_suffix(".parquet"), index=False)
    df.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.10g", lineterminator="\n")


def run(table_path: Path, runs_dir: Path, out_dir: Path, final_fraction: float) -> None:
    curves, final = aggregate_experiment(table_path, runs_dir, final_fraction)
    write_table(curves, Path(out_dir) / "curves")
    write_table(final, Path(out_dir) / "final")
