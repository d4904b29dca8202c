"""Compute estimate of a workflow config: runs × steps ÷ measured updates/s → CPU-hours and GPU-hours.

Runs are counted after deduplication (a run shared by two experiments costs once). Throughput is measured per
*cost class*: the distinct (agent, method names) pairs of the plan. For each class one short segment of the real
training loop (env step, method hooks, agent update) is timed on this machine, after a short random-action
warm-up, on the class's first env. GPU-hours use a CUDA measurement when a GPU is present here, otherwise the
config's declared `estimate.gpu_updates_per_s` (with its `gpu_source`), scaled per class by the class's CPU cost
relative to the cheapest class. The estimate ignores evaluation episodes and rare method events
(resets, growth steps), so read it as a lower bound within tens of percent.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from neuroplastic.experiments import Plan


@dataclass
class ClassCost:
    key: str
    example_run: str
    runs: int = 0
    env_steps: int = 0
    cpu_steps_per_s: float | None = None
    gpu_steps_per_s: float | None = None


def cost_key(run: dict[str, Any]) -> str:
    """Runs that differ only in method parameters (a sensitivity sweep) cost about the same per update."""
    methods = [{"name": m["name"]} for m in run["method"]]
    return json.dumps({"agent": run["agent"], "method": methods}, sort_keys=True)


def cost_classes(plan: Plan) -> dict[str, ClassCost]:
    classes: dict[str, ClassCost] = {}
    for rid in sorted(plan.runs):
        run = plan.runs[rid]
        key = cost_key(run)
        cls = classes.setdefault(key, ClassCost(key, rid))
        cls.runs += 1
        cls.env_steps += int(run["steps"])
    return classes


def measure(run: dict[str, Any], updates: int, device: str, threads: int | None) -> float:
    """Training-loop iterations (env step + hooks + one update) per second for this run's config."""
    import torch

    from neuroplastic import config, loop

    if threads:
        torch.set_num_threads(threads)
    trial = dict(run)
    batch = int(run["agent"].get("batch_size", 256))
    trial["start_steps"] = min(int(run["start_steps"]), max(batch, 1000))
    try:
        cfg = config.resolve(trial, source="estimate")
    except config.ConfigError:
        cfg = config.resolve(run, source="estimate")
    r = loop.build(cfg, torch.device(device))
    state = loop.LoopState()
    t = 0
    while t < cfg.start_steps:
        t += 1
        loop.collect(r, state, t)
    warm = min(20, updates // 5)
    t_start = 0.0
    for i in range(warm + updates):
        if i == warm:
            if r.device.type == "cuda":
                torch.cuda.synchronize()
            t_start = time.perf_counter()
        t += 1
        loop.collect(r, state, t)
        r.methods.on_step(r.agent, t)
        b = r.methods.on_sample(r.agent, r.replay, t)
        if b is None:
            b = r.replay.sample(r.agent.params.batch_size)
        r.agent.update(b)
        r.methods.on_update(r.agent, b, t)
    if r.device.type == "cuda":
        torch.cuda.synchronize()
    r.env.close()
    return updates / (time.perf_counter() - t_start)


def estimate(
    plan: Plan,
    measure_updates: int | None = None,
    cpu_steps_per_s: float | None = None,
    gpu_steps_per_s: float | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    import torch

    est_cfg = plan.config["estimate"]
    classes = cost_classes(plan)
    n_updates = measure_updates or est_cfg["measure_updates"]
    cpu_fixed = cpu_steps_per_s or est_cfg["cpu_updates_per_s"]
    gpu_fixed = gpu_steps_per_s
    gpu_source = "command line" if gpu_fixed else ""
    has_cuda = torch.cuda.is_available()
    for cls in classes.values():
        run = plan.runs[cls.example_run]
        cls.cpu_steps_per_s = cpu_fixed or measure(run, n_updates, "cpu", threads)
        if gpu_fixed:
            cls.gpu_steps_per_s = gpu_fixed
        elif has_cuda:
            cls.gpu_steps_per_s = measure(run, n_updates, "cuda", threads)
            gpu_source = f"measured on {torch.cuda.get_device_name(0)}"
    if not gpu_fixed and not has_cuda and est_cfg["gpu_updates_per_s"]:
        # Declared GPU throughput of the cheapest class; other classes scale with their CPU cost ratio.
        fastest = max(c.cpu_steps_per_s for c in classes.values())
        for cls in classes.values():
            cls.gpu_steps_per_s = est_cfg["gpu_updates_per_s"] * cls.cpu_steps_per_s / fastest
        gpu_source = f"declared in config ({est_cfg.get('gpu_source') or 'estimate.gpu_updates_per_s'})"

    per_exp: dict[str, dict[str, float]] = defaultdict(lambda: {"runs": 0, "env_steps": 0, "cpu_h": 0.0, "gpu_h": 0.0})
    key_of = {rid: cost_key(run) for rid, run in plan.runs.items()}
    for exp in plan.config["experiments"]:
        for rid in plan.experiment_run_ids(exp):
            cls = classes[key_of[rid]]
            steps = int(plan.runs[rid]["steps"])
            row = per_exp[exp]
            row["runs"] += 1
            row["env_steps"] += steps
            row["cpu_h"] += steps / cls.cpu_steps_per_s / 3600
            if cls.gpu_steps_per_s:
                row["gpu_h"] += steps / cls.gpu_steps_per_s / 3600
    total_cpu = sum(c.env_steps / c.cpu_steps_per_s / 3600 for c in classes.values())
    total_gpu = sum(c.env_steps / c.gpu_steps_per_s / 3600 for c in classes.values() if c.gpu_steps_per_s)
    return {
        "config": plan.name,
        "runs": len(plan.runs),
        "env_steps": sum(int(r["steps"]) for r in plan.runs.values()),
        "cpu_hours": total_cpu,
        "gpu_hours": total_gpu if any(c.gpu_steps_per_s for c in classes.values()) else None,
        "cpu_source": "command line/config" if cpu_fixed else f"measured here ({n_updates} updates per class)",
        "gpu_source": gpu_source or None,
        "threads": threads or torch.get_num_threads(),
        "experiments": dict(per_exp),
        "classes": [
            {
                "agent_method": json.loads(c.key),
                "runs": c.runs,
                "env_steps": c.env_steps,
                "cpu_updates_per_s": round(c.cpu_steps_per_s, 2),
                "gpu_updates_per_s": round(c.gpu_steps_per_s, 2) if c.gpu_steps_per_s else None,
            }
            for c in classes.values()
        ],
    }


def format_report(est: dict[str, Any]) -> str:
    lines = [
        f"compute estimate for config {est['config']!r}: {est['runs']} distinct runs, "
        f"{est['env_steps']:,} env steps in total",
        f"{'experiment':<28}{'runs':>6}{'env steps':>16}{'CPU-h':>12}{'GPU-h':>12}",
    ]
    for exp, row in est["experiments"].items():
        gpu = f"{row['gpu_h']:.1f}" if est["gpu_hours"] is not None else "n/a"
        lines.append(f"{exp:<28}{row['runs']:>6}{row['env_steps']:>16,}{row['cpu_h']:>12.1f}{gpu:>12}")
    gpu_total = f"{est['gpu_hours']:.1f}" if est["gpu_hours"] is not None else "n/a"
    lines.append(
        f"{'total (deduplicated)':<28}{est['runs']:>6}{est['env_steps']:>16,}{est['cpu_hours']:>12.1f}{gpu_total:>12}"
    )
    lines.append("(experiment rows count shared runs in each experiment; the total counts each run once)")
    lines.append("")
    lines.append(f"throughput per agent/method class (updates/s; CPU: {est['cpu_source']}, {est['threads']} threads;")
    lines.append(f"  GPU: {est['gpu_source'] or 'no GPU here and none declared: set estimate.gpu_updates_per_s'})")
    for c in est["classes"]:
        methods = "+".join(m["name"] for m in c["agent_method"]["method"]) or "-"
        agent = c["agent_method"]["agent"]["name"]
        gpu = c["gpu_updates_per_s"] if c["gpu_updates_per_s"] else "n/a"
        lines.append(f"  {agent:<6} {methods:<36} runs {c['runs']:>4}  CPU {c['cpu_updates_per_s']:>8}  GPU {gpu}")
    return "\n".join(lines) + "\n"
