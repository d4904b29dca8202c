"""Compute estimate of a workflow config: runs × env steps ÷ throughput → CPU-hours and GPU-hours.

Runs are counted after deduplication (a run shared by two experiments costs once). Throughput is looked up per
*cost class* (the distinct agent + method names of the plan) in stored measurements: JSON files written by
`benchmarks/throughput.py`, shipped in `analysis/throughput/` (this package) or given with `--measurements`.
A class's rate is, in this order:
- `measured`: a loop measurement (env steps/s of `loop.advance`: env step, hooks, and the updates the replay
  ratio owes, so DrQ-v2 counts 0.5 updates per step) of that agent and method;
- `derived`:  the agent's measured baseline × the method's update-throughput ratio to it (from the same file,
  else from the CPU file);
- `assumed`:  the agent's baseline alone (the method's cost is unknown), or a file marked `assumed` (published
  numbers, e.g. LeanRL's H100 TD3/SAC rates, until `benchmarks/gpu_check.sh` measures them);
- `given`:    a rate from the command line or the config's `estimate` section.
GPU-hours follow the packing plan: k runs per GPU (`--runs-per-gpu`, else `train.runs_per_gpu`, else 1) use one
GPU for k runs at the measured aggregate gain of k packed processes; without a packing measurement no gain is
assumed. `--measure` times every class here instead (slow: pixel classes render on the CPU). The estimate
ignores evaluation episodes and rare method events, so read it as a lower bound within tens of percent.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuroplastic import capture, config, loop, runs
from neuroplastic.atari import is_atari_id
from neuroplastic.envs import CLASSIC_IDS
from neuroplastic.experiments import Plan
from neuroplastic.threads import limit_threads

MEASUREMENTS_DIR = Path(__file__).resolve().parent / "throughput"


@dataclass
class Rate:
    steps_per_s: float
    source: str  # measured | derived | assumed | given
    detail: str


@dataclass
class ClassCost:
    key: str
    example_run: str
    runs: int = 0
    env_steps: int = 0
    cpu: Rate | None = None
    gpu: Rate | None = None
    run_ids: list[str] = field(default_factory=list)


# A family without rows of its own is costed on another's: the cycling env cycles MuJoCo tasks.
FAMILY_FALLBACK = {"cycling": "MuJoCo"}


def cost_key(run: dict[str, Any]) -> str:
    """Runs that differ only in method parameters (a sensitivity sweep) cost about the same per update; the same
    agent costs very differently per env family (DQN's MLP on CartPole, its Nature CNN on Atari)."""
    methods = [{"name": m["name"]} for m in run["method"]]
    return json.dumps({"agent": run["agent"], "method": methods, "family": run_family(run)}, sort_keys=True)


def run_family(run: dict[str, Any]) -> str:
    return env_family(run["env"], run["agent"]["name"])


def env_family(env_id: str, agent: str) -> str:
    """The part of the grid an env belongs to: its domain, with the on-policy PPO MuJoCo runs apart (the NE
    paper's MuJoCo part is off-policy; PPO has its own rates)."""
    if env_id.startswith("dmc-pixels:"):
        return "DMC pixels"
    if env_id.startswith("dmc:"):
        return "DMC state"
    if env_id.startswith("cycling"):
        return "cycling"
    if is_atari_id(env_id):
        return "Atari"
    if env_id in CLASSIC_IDS:
        return "classic control"
    return "MuJoCo PPO" if agent == "ppo" else "MuJoCo"


def cost_classes(plan: Plan) -> dict[str, ClassCost]:
    classes: dict[str, ClassCost] = {}
    for rid in sorted(plan.runs):
        run = plan.runs[rid]
        key = cost_key(run)
        cls = classes.setdefault(key, ClassCost(key, rid))
        cls.runs += 1
        cls.env_steps += int(run["steps"])
        cls.run_ids.append(rid)
    return classes


def measure(run: dict[str, Any], iterations: int, device: str, threads: int | None, compile: str = "off") -> float:
    """Env steps/s of the training loop's own `loop.advance` (env step, hooks, the updates the replay ratio
    owes) for this run's config, after its random-action warm-up; per CPU-second of this process on CPU."""
    if threads:
        limit_threads(threads)
    trial = dict(run)
    batch = int(run["agent"].get("batch_size") or 256)
    trial["start_steps"] = min(int(run["start_steps"]), max(batch, 1000))
    try:
        cfg = runs.resolve(trial, source="estimate")
    except config.ConfigError:
        cfg = runs.resolve(run, source="estimate")
    r = loop.build(cfg, torch.device(device))
    r.update = capture.make_update(r.agent, compile)
    state = loop.LoopState()
    t = 0
    while t < cfg.start_steps:
        t += 1
        loop.advance(r, state, t)
    if r.agent.on_policy:
        return _measure_on_policy(r, state, t)
    clock = _clock(r.device)
    warm = min(20, iterations // 5)
    t_start = 0.0
    for i in range(warm + iterations):
        if i == warm:
            if r.device.type == "cuda":
                torch.cuda.synchronize()
            t_start = clock()
        t += 1
        loop.advance(r, state, t)
    if r.device.type == "cuda":
        torch.cuda.synchronize()
    r.env.close()
    return iterations / (clock() - t_start)


# --- stored measurements ----------------------------------------------------------------------------
def load_measurements(paths: list[str | Path] | None = None) -> list[dict[str, Any]]:
    """Given files first (in order), then the packaged ones (measured before assumed)."""
    files = [Path(p) for p in paths or []]
    packaged = sorted(MEASUREMENTS_DIR.glob("*.json"))
    out = []
    for i, f in enumerate(files + packaged):
        try:
            data = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"throughput measurements {f}: {err}") from err
        for key in ("hardware", "updates", "loop"):
            if key not in data:
                raise ValueError(
                    f"throughput measurements {f}: missing key {key!r} (write it with benchmarks/throughput.py)"
                )
        data["_path"] = str(f)
        data["_given"] = i < len(files)
        out.append(data)
    return sorted(out, key=lambda d: (not d["_given"], bool(d.get("assumed"))))


def pick(measurements: list[dict[str, Any]], device: str) -> dict[str, Any] | None:
    for m in measurements:
        if m["hardware"].get("device") == device:
            return m
    return None


def _describe(m: dict[str, Any]) -> str:
    hw = m["hardware"]
    where = hw.get("gpu") or hw.get("cpu") or "?"
    kind = "assumed" if m.get("assumed") else "measured"
    text = f"{kind} on {where}"
    if hw.get("device") == "cpu":
        text += f", {hw.get('torch_threads')} thread(s)"
    if m.get("created"):
        text += f", {m['created'][:10]}"
    if m.get("source"):
        text += f"; source: {m['source']}"
    return text


def _method_name(spec: str) -> str:
    return spec.split("@")[0]


def _methods_key(run_methods: list[dict[str, Any]]) -> str:
    return "+".join(m["name"] for m in run_methods) or "none"


def _row_family(row: dict[str, Any]) -> str | None:
    return env_family(row["env"], row["agent"]) if row.get("env") else None


def _method_ratio(
    agent: str, method: str, files: list[dict[str, Any]], family: str | None = None
) -> tuple[float, str] | None:
    """The method's update throughput relative to the agent without it: same agent and env family first, then
    the same agent on any env, then any agent."""
    for same_agent, same_family in ((True, True), (True, False), (False, False)):
        if same_family and family is None:
            continue
        for m in files:
            for row in m.get("updates", []):
                if _method_name(row["method"]) != method or row.get("ratio_to_baseline") is None:
                    continue
                if same_agent and row["agent"] != agent:
                    continue
                if same_family and _row_family(row) != family:
                    continue
                where = f" on {row['env']}" if row.get("env") else ""
                text = f"{row['agent']}+{row['method']}{where} update ratio in {Path(m['_path']).name}"
                return row["ratio_to_baseline"], text
    return None


def lookup_rate(
    agent: str, method: str, m: dict[str, Any], fallback: list[dict[str, Any]], family: str | None = None
) -> Rate | None:
    """The env steps/s of (agent, method) from measurement file `m` (see the module docstring). With `family`,
    only loop rows of envs of that family count (or of its `FAMILY_FALLBACK`, said in the detail): an agent's
    rate on one domain says nothing about another."""
    base_kind = "assumed" if m.get("assumed") else "measured"
    loops = [row for row in m.get("loop", []) if row["agent"] == agent]
    note = ""
    if family is not None:
        own = [row for row in loops if _row_family(row) == family]
        if not own and family in FAMILY_FALLBACK:
            own = [row for row in loops if _row_family(row) == FAMILY_FALLBACK[family]]
            note = f" ({family} costed as {FAMILY_FALLBACK[family]})"
        loops = own
    for row in loops:
        if _method_name(row["method"]) == method:
            where = f"{agent}+{row['method']} loop on {row['env']}, {row['mode']}{note}"
            return Rate(row["steps_per_s"], base_kind, where)
    baseline = next((row for row in loops if row["method"] == "none"), None)
    if baseline is None:
        return None
    methods = method.split("+")
    base = f"{agent} baseline on {baseline['env']}{note}"
    if method == "none":
        return Rate(baseline["steps_per_s"], base_kind, f"{agent} loop on {baseline['env']}{note}")
    factor, notes = 1.0, []
    for name in methods:
        found = _method_ratio(agent, name, [m, *fallback], family)
        if found is None:
            return Rate(baseline["steps_per_s"], "assumed", f"{base}; cost of {name} unmeasured")
        factor *= found[0]
        notes.append(found[1])
    kind = "assumed" if m.get("assumed") else "derived"
    return Rate(baseline["steps_per_s"] * factor, kind, f"{base} × {'; '.join(notes)}")


def packing_gain(m: dict[str, Any] | None, runs_per_gpu: int) -> tuple[float, str]:
    rows = sorted((m or {}).get("packing") or [], key=lambda r: r["processes"])
    usable = [r for r in rows if r["processes"] <= runs_per_gpu and r.get("aggregate_gain")]
    if runs_per_gpu <= 1:
        return 1.0, "1 run per GPU"
    if not usable:
        return 1.0, f"{runs_per_gpu} runs per GPU; packing gain unmeasured, none assumed"
    r = usable[-1]
    return r["aggregate_gain"], f"{runs_per_gpu} runs per GPU; measured gain {r['aggregate_gain']}× at {r['processes']}"


def _clock(device: Any) -> Any:
    """CPU: process CPU time (a shared machine's other tenants do not count); CUDA: wall time."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def _measure_on_policy(r: Any, state: Any, t: int) -> float:
    """Env steps per second of one full rollout of an on-policy agent and its update epochs (the real loop)."""
    steps = int(r.agent.params.rollout_length)
    clock = _clock(r.device)
    t_start = clock()
    for _ in range(steps):
        t += 1
        loop.advance(r, state, t)
    if r.device.type == "cuda":
        torch.cuda.synchronize()
    r.env.close()
    return steps / (clock() - t_start)


def estimate(
    plan: Plan,
    measure_updates: int | None = None,
    cpu_steps_per_s: float | None = None,
    gpu_steps_per_s: float | None = None,
    threads: int | None = None,
    measurements: list[str | Path] | None = None,
    measure_here: bool = False,
    runs_per_gpu: int | None = None,
) -> dict[str, Any]:

    est_cfg = plan.config.get("estimate", {})
    classes = cost_classes(plan)
    cpu_given = cpu_steps_per_s or est_cfg.get("cpu_updates_per_s")
    gpu_given = gpu_steps_per_s or est_cfg.get("gpu_updates_per_s")
    stored = load_measurements(measurements)
    cpu_file, gpu_file = pick(stored, "cpu"), pick(stored, "cuda")
    k = int(runs_per_gpu or (plan.config.get("train") or {}).get("runs_per_gpu") or 1)
    n_updates = measure_updates or est_cfg.get("measure_updates") or 300
    has_cuda = torch.cuda.is_available()
    for cls in classes.values():
        run = plan.runs[cls.example_run]
        agent, method, family = run["agent"]["name"], _methods_key(run["method"]), run_family(run)
        if cpu_given:
            cls.cpu = Rate(float(cpu_given), "given", "command line/config")
        elif measure_here:
            cls.cpu = Rate(measure(run, n_updates, "cpu", threads), "measured", f"here, {n_updates} loop steps")
        elif cpu_file is not None:
            cls.cpu = lookup_rate(agent, method, cpu_file, [], family)
        if gpu_given:
            source = est_cfg.get("gpu_source") or "command line/config"
            cls.gpu = Rate(float(gpu_given), "given", source if not gpu_steps_per_s else "command line")
        elif measure_here and has_cuda:
            rate = measure(run, n_updates, "cuda", threads, compile="auto")
            cls.gpu = Rate(rate, "measured", f"here on {torch.cuda.get_device_name(0)}")
        elif gpu_file is not None:
            cls.gpu = lookup_rate(agent, method, gpu_file, [cpu_file] if cpu_file else [], family)
    gain, packing = packing_gain(gpu_file, k)

    def hours(steps: int, rate: Rate | None) -> float | None:
        return None if rate is None else steps / rate.steps_per_s / 3600

    per_exp: dict[str, dict[str, Any]] = defaultdict(lambda: {"runs": 0, "env_steps": 0, "cpu_h": 0.0, "gpu_h": 0.0})
    key_of = {rid: cost_key(run) for rid, run in plan.runs.items()}
    for exp in plan.config["experiments"]:
        for rid in plan.experiment_run_ids(exp):
            cls = classes[key_of[rid]]
            steps = int(plan.runs[rid]["steps"])
            row = per_exp[exp]
            row["runs"] += 1
            row["env_steps"] += steps
            for unit, rate, div in (("cpu_h", cls.cpu, 1.0), ("gpu_h", cls.gpu, gain)):
                h = hours(steps, rate)
                row[unit] = None if h is None or row[unit] is None else row[unit] + h / div
    # Parts by env family (each class lies in one family; a part sums its classes' runs).
    families: dict[str, dict[str, Any]] = defaultdict(lambda: {"runs": 0, "env_steps": 0, "cpu_h": 0.0, "gpu_h": 0.0})
    for rid, run in sorted(plan.runs.items()):
        cls = classes[key_of[rid]]
        steps = int(run["steps"])
        row = families[run_family(run)]
        row["runs"] += 1
        row["env_steps"] += steps
        for unit, rate, div in (("cpu_h", cls.cpu, 1.0), ("gpu_h", cls.gpu, gain)):
            h = hours(steps, rate)
            row[unit] = None if h is None or row[unit] is None else row[unit] + h / div

    def total(unit: str) -> float | None:
        vals = [r[unit] for r in families.values()]
        return None if any(v is None for v in vals) else sum(vals)

    return {
        "config": plan.name,
        "runs": len(plan.runs),
        "env_steps": sum(int(r["steps"]) for r in plan.runs.values()),
        "cpu_hours": total("cpu_h"),
        "gpu_hours": total("gpu_h"),
        "cpu_source": "given"
        if cpu_given
        else ("measured here" if measure_here else _describe(cpu_file) if cpu_file else None),
        "gpu_source": (
            ("given: " + (est_cfg.get("gpu_source") or "command line"))
            if gpu_given
            else ("measured here" if measure_here and has_cuda else _describe(gpu_file) if gpu_file else None)
        ),
        "runs_per_gpu": k,
        "packing_gain": gain,
        "packing": packing,
        "threads": threads or torch.get_num_threads(),
        "families": dict(families),
        "experiments": dict(per_exp),
        "classes": [
            {
                "agent_method": json.loads(c.key),
                "runs": c.runs,
                "env_steps": c.env_steps,
                "cpu_steps_per_s": round(c.cpu.steps_per_s, 2) if c.cpu else None,
                "cpu_rate": None if c.cpu is None else f"{c.cpu.source}: {c.cpu.detail}",
                "gpu_steps_per_s": round(c.gpu.steps_per_s, 2) if c.gpu else None,
                "gpu_rate": None if c.gpu is None else f"{c.gpu.source}: {c.gpu.detail}",
            }
            for c in classes.values()
        ],
    }


def _h(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def format_report(est: dict[str, Any]) -> str:
    lines = [
        f"compute estimate for config {est['config']!r}: {est['runs']} distinct runs, "
        f"{est['env_steps']:,} env steps in total",
        f"CPU rates: {est['cpu_source'] or 'none stored or given'}",
        f"GPU rates: {est['gpu_source'] or 'none stored or given'}",
        f"GPU packing plan: {est['packing']} (GPU-hours ÷ {est['packing_gain']})",
        "",
        f"{'experiment':<28}{'runs':>6}{'env steps':>16}{'CPU-h':>12}{'GPU-h':>12}",
    ]
    for exp, row in est["experiments"].items():
        lines.append(f"{exp:<28}{row['runs']:>6}{row['env_steps']:>16,}{_h(row['cpu_h']):>12}{_h(row['gpu_h']):>12}")
    lines.append("")
    for fam, row in sorted(est["families"].items()):
        lines.append(
            f"{'part: ' + fam:<28}{row['runs']:>6}{row['env_steps']:>16,}{_h(row['cpu_h']):>12}{_h(row['gpu_h']):>12}"
        )
    lines.append(
        f"{'total (deduplicated)':<28}{est['runs']:>6}{est['env_steps']:>16,}{_h(est['cpu_hours']):>12}"
        f"{_h(est['gpu_hours']):>12}"
    )
    lines.append("(experiment rows count shared runs in each experiment; the totals count each run once;")
    lines.append(" n/a: no rate stored for some class, see below)")
    lines.append("")
    lines.append("env steps/s per agent/method class (how each rate was obtained):")
    for c in est["classes"]:
        methods = "+".join(m["name"] for m in c["agent_method"]["method"]) or "-"
        methods = f"{methods} [{c['agent_method']['family']}]"
        agent = c["agent_method"]["agent"]["name"]
        cpu = "n/a" if c["cpu_steps_per_s"] is None else f"{c['cpu_steps_per_s']:.1f}"
        gpu = "n/a" if c["gpu_steps_per_s"] is None else f"{c['gpu_steps_per_s']:.1f}"
        lines.append(f"  {agent:<6} {methods:<30} runs {c['runs']:>4}  CPU {cpu:>8} ({c['cpu_rate'] or 'no rate'})")
        lines.append(f"  {'':<6} {'':<30} {'':>9}  GPU {gpu:>8} ({c['gpu_rate'] or 'no rate'})")
    return "\n".join(lines) + "\n"
