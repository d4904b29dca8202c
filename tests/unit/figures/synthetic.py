"""Synthetic tidy tables (the aggregate's long format) for the figure-kind tests: no training.

- `exp`: 2 envs × 4 seeds × 3 steps; TD3, NE and sparse variants tagged with family/distribution/sparsity.
- `cyc`: the cycling env (3 tasks in a non-alphabetical cycle, phase metrics, FAU).
- `drq_arr`: pixel DMC with Adaptive RR switch steps (quadruped-run, cheetah-run; 3 seeds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neuroplastic.analysis import aggregate

STATS = {
    "seed": 0,
    "reps": 300,
    "curve_reps": 100,
    "profile_reps": 100,
    "confidence": 0.95,
    "final_fraction": 0.5,
    "reference": {"experiment": None, "label": "TD3"},
}
KEYS = ["experiment", "label", "variant", "env", "seed", "run_id"]

# Cycle order deliberately not alphabetical, so inferring it cannot pass by sorting.
CYCLE_TASKS = ["Walker2d-v4", "HalfCheetah-v4", "Hopper-v4"]
CYCLE_PHASE, CYCLE_STEPS, CYCLE_EVERY = 100, 300, 50


def exp_curves() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    variants = [("TD3", "TD3", {}), ("NE", "NE", {})]
    for family in ("Static", "SET"):
        for dist in ("erk", "uniform"):
            for s in (0.5, 0.9):
                tags = {"family": family, "distribution": dist, "sparsity": s}
                variants.append((family, f"{family}[{dist},sparsity={s:g}]", tags))
    rows = []
    for label, variant, tags in variants:
        for env_i, env in enumerate(("E1", "E2")):
            for seed in range(4):
                level = {"TD3": 100.0, "NE": 150.0}.get(label, 120.0 - 40 * tags.get("sparsity", 0))
                for step in (100, 200, 300):
                    ret = level * (env_i + 1) * step / 300 + seed + rng.normal(0, 1)
                    for metric, value in (("eval_return", ret), ("fau.critic", 0.3 + 0.1 * seed)):
                        rows.append(
                            {
                                "experiment": "exp",
                                "label": label,
                                "variant": variant,
                                "env": env,
                                "seed": seed,
                                "run_id": f"{abs(hash((variant, env, seed))) % 16**12:012x}",
                                "tag_family": tags.get("family"),
                                "tag_distribution": tags.get("distribution"),
                                "tag_sparsity": tags.get("sparsity"),
                                "step": step,
                                "metric": metric,
                                "value": value,
                            }
                        )
    return pd.DataFrame(rows)


def cycling_curves(variants=("TD3", "NE"), seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for vi, v in enumerate(variants):
        for s in seeds:
            for t in range(CYCLE_EVERY, CYCLE_STEPS + 1, CYCLE_EVERY):
                phase = (t - 1) // CYCLE_PHASE
                current = CYCLE_TASKS[phase % len(CYCLE_TASKS)]
                values = {f"eval_return.{task}": 100.0 * k + t + 10 * vi + s for k, task in enumerate(CYCLE_TASKS)}
                values["eval_return"] = values[f"eval_return.{current}"]
                values["cycle.phase"] = float(phase)
                values["cycle.task_index"] = float(phase % len(CYCLE_TASKS))
                values["fau.critic"] = 0.5 - t / 1000 + 0.01 * s
                values["fau.actor"] = 0.6 - t / 2000
                for metric, value in values.items():
                    rows.append(("cyc", v, v, "cycling", s, f"{v}-{s}", t, metric, value))
    return pd.DataFrame(rows, columns=[*KEYS, "step", "metric", "value"])


def visual_curves() -> pd.DataFrame:
    rows = []
    for env in ("dmc-pixels:quadruped-run", "dmc-pixels:cheetah-run"):
        for seed in range(3):
            for label in ("RR 0.5", "Adaptive RR"):
                key = ["drq_arr", label, label, env, seed, f"{env[-3:]}-{label[:2]}-{seed}"]
                for step in (1000, 2000, 3000):
                    rows.append([*key, step, "eval_return", 100.0 * seed + step / 100])
                    rows.append([*key, step, "replay_ratio", 0.5])
                # Adaptive RR switches at step 1500 + 500·seed; seed 2 never switches on cheetah
                if label == "Adaptive RR" and not (env.endswith("cheetah-run") and seed == 2):
                    switch = 1500 + 500 * seed
                    for step in (2000, 3000):
                        if step >= switch:
                            rows.append([*key, step, "adaptive_rr.switch_step", float(switch)])
    return pd.DataFrame(rows, columns=[*KEYS, "step", "metric", "value"])


def visual_final(curves: pd.DataFrame) -> pd.DataFrame:
    """Last value per run and metric, with the last logged step (the aggregate's `last_step`)."""
    keys = [*KEYS, "metric"]
    last = curves.sort_values("step").groupby(keys, sort=False).agg(value=("value", "last"), last_step=("step", "max"))
    return last.reset_index()


def write_aggregates(root: Path) -> Path:
    """All three experiments as the workflow writes them: <root>/<experiment>/{curves,final}.{parquet,csv}."""
    for name, curves, final in (
        ("exp", exp_curves(), None),
        ("cyc", cycling_curves(), None),
        ("drq_arr", visual_curves(), visual_final(visual_curves())),
    ):
        if final is None:
            final = aggregate.final_values(curves, 0.34 if name == "exp" else 0.1)  # exp: last of 3 points
        aggregate.write_table(curves, root / name / "curves")
        aggregate.write_table(final, root / name / "final")
    return root
