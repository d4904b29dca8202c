"""Compute estimate of a workflow config: runs × env steps ÷ throughput → CPU-hours and GPU-hours.

Runs are counted after deduplication (a run shared by two experiments costs once). Throughput is looked up per
*cost class* (agent, method names, env family) in stored measurements: JSON files written by
`benchmarks/throughput.py`, shipped in `analysis/throughput/` (this package) or given with `--measurements`. Each
class's CPU and GPU rate says where it comes from, and is one of:
- `measured`:  a loop measurement (env steps/s of `loop.advance`: env step, hooks, and the updates the replay ratio
  owes, so DrQ-v2 counts 0.5 updates per step) of that agent, method and env family on that device; or the
  agent's measured loop × the method's update-throughput ratio to the agent alone, both measured in the same file
  on the same agent and env family;
- `published`: a figure from a publication, with its source, in a file marked `published` (LeanRL's H100 TD3, SAC
  and PPO rates);
- `given`:     a rate from the command line or the config's `estimate` section;
- `n/a`:       none of these exist; the reason is printed. A rate is never carried over from another device (a
  CPU method ratio says nothing about a launch-bound GPU update) or from another agent.
Methods that do a subset of another method's work are costed as that one (`COST_AS`, said in the detail): an
upper bound. GPU-hours follow the packing plan: k runs per GPU (`--runs-per-gpu`, else `train.runs_per_gpu`,
else 1) use one GPU for k runs at the measured aggregate gain of k packed processes; without a packing measurement
no gain is assumed. `--measure` times every class here instead (slow: pixel classes render on the CPU). The
estimate ignores evaluation episodes and rare method events, so read it as a lower bound within tens of percent.

`plan_budget` (`--gpu-hours N` / `--cpu-hours N`) walks the config's experiments in a stated order and keeps each
one whose new runs still fit the budget, then writes the overlay (`include` + `experiments_only`) that runs just
those.
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
from neuroplastic.analysis.budget import hours_text
from neuroplastic.atari import is_atari_id
from neuroplastic.envs import CLASSIC_IDS
from neuroplastic.experiments import Plan
from neuroplastic.threads import limit_threads

MEASUREMENTS_DIR = Path(__file__).resolve().parent / "throughput"


@dataclass
class Rate:
    steps_per_s: float | None  # None: n/a
    source: str  # measured | published | given | n/a
    detail: str  # how the rate was obtained, or why there is none


@dataclass
class ClassCost:
    key: str
    example_run: str
    runs: int = 0
    env_steps: int = 0
    cpu: Rate = field(default_factory=lambda: Rate(None, "n/a", "not looked up"))
    gpu: Rate = field(default_factory=lambda: Rate(None, "n/a", "not looked up"))
    run_ids: list[str] = field(default_factory=list)


# A family without rows of its own is costed on another's: the cycling env cycles MuJoCo tasks.
FAMILY_FALLBACK = {"cycling": "MuJoCo"}
# Methods that do a subset of another's work per update cost at most as much: NE's ablations leave out parts of
# NE; data_augmentation only switches the agent's own augmentation off for part of a run ("none": the agent alone).
COST_AS = {
    "ne_no_review": "ne",
    "ne_growth_only": "ne",
    "ne_no_growth": "ne",
    "ne_no_pruning": "ne",
    "ne_static_actor": "ne",
    "ne_static": "ne",
    "data_augmentation": "none",
}


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
    # Episode-end updates cost what per-step ones do, but come in bursts that a short measurement would cut.
    trial.pop("update_schedule", None)
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
    """Given files first (in order), then the packaged ones (measured before published)."""
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
        if data.get("assumed"):
            raise ValueError(
                f"throughput measurements {f}: key 'assumed' is no longer read; a file of published figures says "
                '"published": true and names its "source"'
            )
        if data.get("published") and not data.get("source"):
            raise ValueError(f"throughput measurements {f}: 'published' needs a 'source' (where the figures are from)")
        data["_path"] = str(f)
        data["_given"] = i < len(files)
        out.append(data)
    return sorted(out, key=lambda d: (not d["_given"], bool(d.get("published"))))


def pick(measurements: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """The files of `device`, in lookup order (given first, then packaged; measured before published)."""
    return [m for m in measurements if m["hardware"].get("device") == device]


def lookup_in(agent: str, method: str, files: list[dict[str, Any]], family: str | None, device: str) -> Rate:
    """The rate from the first file that has one (each file's rate from that file alone: one machine per rate).
    Without one: the reason of the first file with rows of this agent and family, else of the first file."""
    if not files:
        what = "measurement" if device == "cpu" else "measurement or published figure"
        return Rate(None, "n/a", f"no {device.upper()} {what} stored or given")
    misses = []
    for m in files:
        rate = lookup_rate(agent, method, m, family)
        if rate.steps_per_s is not None:
            rate.detail += f" [{Path(m['_path']).name}]"
            return rate
        misses.append((_has_rows(agent, m, family), rate))
    return next((rate for has_rows, rate in misses if has_rows), misses[0][1])


def _has_rows(agent: str, m: dict[str, Any], family: str | None) -> bool:
    families = {family, FAMILY_FALLBACK.get(family or "")}
    return any(row["agent"] == agent and (family is None or _row_family(row) in families) for row in m["loop"])


def _kind(m: dict[str, Any]) -> str:
    return "published" if m.get("published") else "measured"


def _describe(m: dict[str, Any]) -> str:
    hw = m["hardware"]
    where = hw.get("gpu") or hw.get("cpu") or "?"
    text = f"{_kind(m)} on {where}"
    if hw.get("device") == "cpu":
        text += f", {hw.get('torch_threads')} thread(s)"
    if m.get("created"):
        text += f", {m['created'][:10]}"
    if m.get("source"):
        text += f"; source: {m['source']}"
    return text


def _describe_all(files: list[dict[str, Any]]) -> str | None:
    if len(files) <= 1:
        return _describe(files[0]) if files else None
    return "; ".join(f"[{Path(m['_path']).name}] {_describe(m)}" for m in files)


def _method_name(spec: str) -> str:
    return spec.split("@")[0]


def _methods_key(run_methods: list[dict[str, Any]]) -> str:
    return "+".join(m["name"] for m in run_methods) or "none"


def _row_family(row: dict[str, Any]) -> str | None:
    return env_family(row["env"], row["agent"]) if row.get("env") else None


def _method_ratio(agent: str, method: str, m: dict[str, Any], family: str | None) -> float | None:
    """The method's update-throughput ratio to the agent alone, measured in `m` on this agent and env family."""
    for row in m.get("updates", []):
        if _method_name(row["method"]) != method or row.get("ratio_to_baseline") is None or row["agent"] != agent:
            continue
        if family is None or _row_family(row) == family:
            return float(row["ratio_to_baseline"])
    return None


def _no_rate(agent: str, method: str, m: dict[str, Any], family: str | None) -> Rate:
    """n/a, with the file's own reason where it gives one (a published file says what was searched)."""
    for entry in m.get("not_available", []):
        if entry.get("agent") == agent and entry.get("family") in (None, family):
            return Rate(None, "n/a", entry["reason"])
    device = m["hardware"].get("device", "?")
    where = f" on {family}" if family else ""
    return Rate(None, "n/a", f"no {device} rate of {agent}{where} in {Path(m['_path']).name}")


def lookup_rate(agent: str, method: str, m: dict[str, Any], family: str | None = None) -> Rate:
    """The env steps/s of (agent, methods joined by '+') from measurement file `m` (see the module docstring).
    With `family`, only rows of envs of that family count (or of its `FAMILY_FALLBACK`, said in the detail): an
    agent's rate on one domain says nothing about another. Only `m` is read: no rate crosses devices or agents."""
    kind = _kind(m)
    loops = [row for row in m.get("loop", []) if row["agent"] == agent]
    note = ""
    if family is not None:
        own = [row for row in loops if _row_family(row) == family]
        if not own and family in FAMILY_FALLBACK:
            own = [row for row in loops if _row_family(row) == FAMILY_FALLBACK[family]]
            note = f" ({family} costed as {FAMILY_FALLBACK[family]})"
        loops = own
    names = [] if method == "none" else method.split("+")
    aliases = [f"{n} costed as {COST_AS[n]} (an upper bound)" for n in names if n in COST_AS]
    names = [COST_AS.get(n, n) for n in names]
    names = [n for n in names if n != "none"]
    note += "".join(f"; {a}" for a in aliases)
    key = "+".join(names) or "none"
    for row in loops:
        if _method_name(row["method"]) == key:
            return Rate(row["steps_per_s"], kind, f"{agent}+{row['method']} loop on {row['env']}, {row['mode']}{note}")
    baseline = next((row for row in loops if row["method"] == "none"), None)
    if baseline is None:
        return _no_rate(agent, method, m, family)
    ratio_family = _row_family(baseline)
    factor = 1.0
    for name in names:
        ratio = _method_ratio(agent, name, m, ratio_family)
        if ratio is None:
            device = m["hardware"].get("device", "?")
            return Rate(
                None,
                "n/a",
                f"the cost of {name} on {agent} is not measured on {device} ({Path(m['_path']).name} has "
                f"{agent}'s baseline on {baseline['env']} but no {name} row; a ratio from another agent or device "
                "is not used)",
            )
        factor *= ratio
    detail = f"{agent} loop on {baseline['env']}{note}"
    if names:
        detail += f" × update ratio of {'+'.join(names)} to {agent} alone (both measured in one file)"
    return Rate(baseline["steps_per_s"] * factor, kind, detail)


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
    cpu_files, gpu_files = pick(stored, "cpu"), pick(stored, "cuda")
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
        else:
            cls.cpu = lookup_in(agent, method, cpu_files, family, "cpu")
        if gpu_given:
            source = est_cfg.get("gpu_source") or "command line/config"
            cls.gpu = Rate(float(gpu_given), "given", source if not gpu_steps_per_s else "command line")
        elif measure_here and has_cuda:
            rate = measure(run, n_updates, "cuda", threads, compile="auto")
            cls.gpu = Rate(rate, "measured", f"here on {torch.cuda.get_device_name(0)}")
        else:
            cls.gpu = lookup_in(agent, method, gpu_files, family, "gpu")
    gain, packing = packing_gain(next((m for m in gpu_files if m.get("packing")), None), k)

    # Hours of every run (None: its class has no rate); experiments, parts and totals sum these.
    key_of = {rid: cost_key(run) for rid, run in plan.runs.items()}
    per_run: dict[str, dict[str, float | None]] = {}
    for rid, run in plan.runs.items():
        cls = classes[key_of[rid]]
        steps = int(run["steps"])
        per_run[rid] = {
            "cpu_h": None if cls.cpu.steps_per_s is None else steps / cls.cpu.steps_per_s / 3600,
            "gpu_h": None if cls.gpu.steps_per_s is None else steps / cls.gpu.steps_per_s / 3600 / gain,
        }

    def summed(run_ids: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"runs": len(run_ids), "env_steps": sum(int(plan.runs[r]["steps"]) for r in run_ids)}
        for unit in ("cpu_h", "gpu_h"):
            vals = [per_run[r][unit] for r in run_ids]
            row[unit] = None if any(v is None for v in vals) else sum(vals)  # type: ignore[arg-type]
            row[unit + "_na_runs"] = sum(v is None for v in vals)
        return row

    per_exp = {exp: summed(plan.experiment_run_ids(exp)) for exp in plan.config["experiments"]}
    # Parts by env family (each class lies in one family; a part sums its runs once).
    by_family: dict[str, list[str]] = defaultdict(list)
    for rid, run in sorted(plan.runs.items()):
        by_family[run_family(run)].append(rid)
    families = {fam: summed(rids) for fam, rids in by_family.items()}
    total = summed(sorted(plan.runs))

    def rate_json(rate: Rate) -> dict[str, Any]:
        value = None if rate.steps_per_s is None else round(rate.steps_per_s, 2)
        return {"steps_per_s": value, "source": rate.source, "detail": rate.detail}

    return {
        "config": plan.name,
        "runs": len(plan.runs),
        "env_steps": total["env_steps"],
        "cpu_hours": total["cpu_h"],
        "gpu_hours": total["gpu_h"],
        "cpu_source": "given" if cpu_given else ("measured here" if measure_here else _describe_all(cpu_files)),
        "gpu_source": (
            ("given: " + (est_cfg.get("gpu_source") or "command line"))
            if gpu_given
            else ("measured here" if measure_here and has_cuda else _describe_all(gpu_files))
        ),
        "runs_per_gpu": k,
        "packing_gain": gain,
        "packing": packing,
        "threads": threads or torch.get_num_threads(),
        "families": families,
        "experiments": per_exp,
        "classes": [
            {
                "agent_method": json.loads(c.key),
                "runs": c.runs,
                "env_steps": c.env_steps,
                "cpu": rate_json(c.cpu),
                "gpu": rate_json(c.gpu),
            }
            for c in classes.values()
        ],
        "_per_run": per_run,
    }


def public(est: dict[str, Any]) -> dict[str, Any]:
    """The estimate without its per-run working data (what `--json` prints)."""
    return {k: v for k, v in est.items() if not k.startswith("_")}


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
        lines.append(
            f"{exp:<28}{row['runs']:>6}{row['env_steps']:>16,}{hours_text(row['cpu_h']):>12}{hours_text(row['gpu_h']):>12}"
        )
    lines.append("")
    for fam, row in sorted(est["families"].items()):
        lines.append(
            f"{'part: ' + fam:<28}{row['runs']:>6}{row['env_steps']:>16,}{hours_text(row['cpu_h']):>12}"
            f"{hours_text(row['gpu_h']):>12}"
        )
    lines.append(
        f"{'total (deduplicated)':<28}{est['runs']:>6}{est['env_steps']:>16,}{hours_text(est['cpu_hours']):>12}"
        f"{hours_text(est['gpu_hours']):>12}"
    )
    lines.append("(experiment rows count shared runs in each experiment; the totals count each run once;")
    lines.append(" n/a: some class of the row has no rate; each class's reason is below)")
    lines.append("")
    lines.append("env steps/s per agent/method class; source: measured | published | given | n/a (with the reason):")
    for c in est["classes"]:
        methods = "+".join(m["name"] for m in c["agent_method"]["method"]) or "-"
        agent = c["agent_method"]["agent"]["name"]
        lines.append(f"  {agent} {methods} [{c['agent_method']['family']}]: {c['runs']} runs")
        for device in ("cpu", "gpu"):
            rate = c[device]
            v = rate["steps_per_s"]
            value = "n/a" if v is None else f"{v:.1f}" if v >= 10 else f"{v:.2f}"
            lines.append(f"    {device.upper()} {value:>8}  {rate['source']:<10} {rate['detail']}")
    return "\n".join(lines) + "\n"
