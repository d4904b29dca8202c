"""Throughput of the training update and loop: agent × method × mode, each as a ratio to a reference measured in
the same process, written as JSON that `neuroplastic estimate` reads.

What is measured (one timing helper, `interleaved`: blocks of every case run in rotating order, repeated, so the
slow drifts of a shared machine hit every case alike; reported are the median and the min–max spread over
repeats, and per repeat the ratio to the reference case's block of the same repeat):
- `updates`: updates/s of the loop's own update path (`loop.sample_batch`, `loop.run_updates`) on a replay buffer
  filled by random-action env steps. Ratios: to the same agent/method in eager mode (`ratio_to_eager`) and to the
  agent without a method in the same mode (`ratio_to_baseline`). For a method whose per-update event period
  (NE/RigL/GMP Δ) exceeds the block, the steady state is measured in blocks and one event is timed separately and
  amortised over its period.
- `loop`: env steps/s of the loop's own `loop.advance` (env step, hooks, the updates the replay ratio owes), the
  unit the compute estimate counts runs in.
- `packing` (CUDA only): k = 1, 2, 4, 8, 16 concurrent processes each training TD3 updates on the same GPU;
  per-run and aggregate updates/s.

    python benchmarks/throughput.py [--device cpu|cuda] [--modes off,compile,graphs] [--agents td3,sac,drqv2]
        [--methods none,ne,...] [--repeats 5] [--block 300] [--out FILE.json] [--quick]

Default modes: `off` on CPU (inductor takes ~70 s per trace on CPU for ~1.0×), `off,compile,graphs` on CUDA.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from neuroplastic import capture, config, loop, runs
from neuroplastic.agents import AGENTS
from neuroplastic.allocator import keep_freed_memory
from neuroplastic.analysis.estimate import measure as loop_steps_per_s
from neuroplastic.threads import limit_threads

# The networks and envs the paper grid uses per agent (TD3 with the NE code's critic, as in config/paper.yaml;
# the sparse-training study's PPO and DQN with their defaults). A case is an agent on one env family: DQN's MLP on
# classic control and its Nature CNN on Atari cost very differently, and the estimate looks rates up per family.
AGENT_RUNS: dict[str, dict[str, Any]] = {
    "td3": {"agent": {"name": "td3", "critic": "ne"}, "env": "HalfCheetah-v4"},
    "sac": {"agent": {"name": "sac"}, "env": "HalfCheetah-v4"},
    "drqv2": {"agent": {"name": "drqv2"}, "env": "dmc-pixels:cheetah-run"},
    "ppo": {"agent": {"name": "ppo"}, "env": "Hopper-v4"},
    "dqn": {"agent": {"name": "dqn"}, "env": "CartPole-v1"},
    "dqn-atari": {"agent": {"name": "dqn"}, "env": "ALE/Pong-v5"},
}
STUDY_CASES = ("ppo", "dqn", "dqn-atari")
STUDY_METHODS = ["none", "static", "set", "rigl", "gmp", "dense_scaled"]
# The study's sparse variants train without the methods' own weight decay (config/paper.yaml: PPO's L2 is the agent's).
STUDY_METHOD_PARAMS = {name: {"weight_decay": 0.0} for name in ("static", "set", "rigl", "gmp")}
# Per agent, the methods the paper grid trains it with; `name@delta` sets Δ (NE overhead goals: 100 and 10⁴).
AGENT_METHODS: dict[str, list[str]] = {
    "td3": [
        "none",
        "ne@10000",
        "ne@100",
        "ne_code@10000",
        "ne_code@100",
        "reset",
        "redo",
        "plasticity_injection",
        "layernorm",
        "static",
    ],
    "sac": ["none", "static", "set", "rigl", "gmp", "dense_scaled"],
    "drqv2": ["none", "ne", "redo", "reset", "layernorm", "plasticity_injection", "adaptive_rr"],
    **{case: STUDY_METHODS for case in STUDY_CASES},
}
PACKING = (1, 2, 4, 8, 16)
PIXEL_BENCH_BUFFER = 20_000  # transitions (~0.4 GiB at 84×84)


def clock_for(device: torch.device) -> Callable[[], float]:
    """CPU: this process's CPU time, so a shared, loaded machine measures what one dedicated core would do
    (wall time there mostly measures the other tenants); CUDA: wall time (the GPU works asynchronously)."""
    return time.process_time if device.type == "cpu" else time.perf_counter


# --- the one timing helper ----------------------------------------------------------------------------
def interleaved(
    cases: dict[str, Callable[[], float]], repeats: int, reference: Callable[[str], str | None]
) -> dict[str, dict[str, Any]]:
    """Run every case's block once per repeat, rotating the order; each block returns its seconds per item.

    Returns per case: `median` and `spread` (min, max) of items/s over repeats, and `ratio`: the median over
    repeats of (reference's seconds per item / this case's) in the same repeat (`reference(name)` names it; None:
    no ratio)."""
    names = list(cases)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(repeats):
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            seconds[name].append(cases[name]())
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        rates = [1.0 / s for s in seconds[name]]
        ref = reference(name)
        ratio = None
        if ref is not None and ref in seconds:
            ratio = statistics.median(r / s for r, s in zip(seconds[ref], seconds[name], strict=True))
        out[name] = {"median": statistics.median(rates), "spread": [min(rates), max(rates)], "ratio": ratio}
    return out


# --- building the cases ----------------------------------------------------------------------------
def method_entry(spec: str) -> list[dict[str, Any]]:
    if spec == "none":
        return []
    name, _, delta = spec.partition("@")
    entry: dict[str, Any] = {"name": name}
    if delta:
        # NE nests its schedule under `growth`; the sparse-training methods keep `delta` flat.
        if name.startswith("ne"):
            entry["growth"] = {"delta": int(delta)}
        else:
            entry["delta"] = int(delta)
    return [entry]


def agent_name(case: str) -> str:
    return AGENT_RUNS[case]["agent"]["name"]


def run_config(agent: str, method: str, steps: int, start_steps: int, small: bool) -> config.RunConfig:
    """The run of case `agent` (a key of AGENT_RUNS) with `method`; on-policy agents start without random steps."""
    base = json.loads(json.dumps(AGENT_RUNS[agent]))
    if agent == "ppo":
        start_steps = 0
    if agent == "drqv2":
        # The replay's capacity does not change an update's work, and 1M pixel slots reserve ~20 GiB per case.
        base["agent"].update(buffer_size=PIXEL_BENCH_BUFFER)
    if small and agent == "drqv2":
        base["agent"].update(batch_size=64)
        base["env_options"] = {"size": 48}
    raw = {
        **base,
        "seed": 0,
        "steps": steps,
        "start_steps": start_steps,
        "eval_every": steps,
        "log_every": steps,
        "checkpoint_every": 0,
        "method": method_entry(method),
    }
    if agent in STUDY_CASES:
        raw["method"] = [{**m, **STUDY_METHOD_PARAMS.get(m["name"], {})} for m in raw["method"]]
    return runs.resolve(raw, source="throughput benchmark")


class Case:
    """One (agent, method, mode): a built run with a filled buffer, and its update function."""

    def __init__(self, agent: str, method: str, mode: str, device: torch.device, block: int, args) -> None:
        self.case, self.agent_name, self.method, self.mode, self.block = agent, agent_name(agent), method, mode, block
        self.env = AGENT_RUNS[agent]["env"]
        batch = int(AGENT_RUNS[agent]["agent"].get("batch_size", 256))
        start = max(batch, 64) + 16 if agent == "drqv2" else 1000
        # A long nominal run so that schedules in fractions of the run (GMP, RigL stop) stay in their active part.
        cfg = run_config(agent, method, steps=1_000_000, start_steps=start, small=args.quick)
        self.run = loop.build(cfg, device)
        state = loop.LoopState()
        for t in range(1, cfg.start_steps + 1):
            loop.collect(self.run, state, t)
        self.t = cfg.start_steps
        self.device = device
        self.clock = clock_for(device)
        self.run.update = capture.make_update(self.run.agent, mode, backend=args.backend)
        self.block_updates(max(8, block // 10))  # warm-up: Adam state, allocations, compilation, graph capture

    def block_updates(self, n: int) -> float:
        run = self.run
        self.t += 1
        self._sync()
        t0 = self.clock()
        loop.run_updates(run, (loop.sample_batch(run, self.t) for _ in range(n)), self.t)
        self._sync()
        return (self.clock() - t0) / n

    def event_period(self) -> int | None:
        """Updates between the method's update-time events (NE/RigL/GMP Δ, ReDo's interval), if any."""
        return next((p for m in self.run.methods if (p := m.event_period()) is not None), None)

    def event_seconds(self, repeats: int = 3) -> float:
        """Extra time of one update that carries the method's event (a topology update, a ReDo recycling),
        over a plain update; median of `repeats`."""
        times = []
        for _ in range(repeats):
            plain = self.block_updates(1)
            times.append(self._event() - plain)
        return max(0.0, statistics.median(times))

    def _event(self) -> float:
        """Seconds of one update that carries the method's event."""
        (m,) = list(self.run.methods)
        m.force_next_event(self.run.agent)
        return self.block_updates(1)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


# --- the benchmark ------------------------------------------------------------------------------------
def hardware(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "device": device.type,
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
    }
    return info


def measure_updates(args, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    for agent in args.agents:
        if AGENTS[agent_name(agent)].on_policy:
            # Its updates are epochs over a rollout, not samples of a replay: the loop measurement times them.
            print(f"  {agent}: on-policy, measured by the loop only", file=sys.stderr)
            continue
        methods = [m for m in AGENT_METHODS[agent] if args.methods is None or m.split("@")[0] in args.methods]
        cases: dict[str, Case] = {}
        for method in methods:
            for mode in args.modes:
                key = f"{agent}|{method}|{mode}"
                print(f"  building {key}", file=sys.stderr, flush=True)
                try:
                    cases[key] = Case(agent, method, mode, device, args.block, args)
                except (NotImplementedError, ValueError) as err:
                    print(f"  skipped {key}: {err}", file=sys.stderr)

        def reference(key: str) -> str | None:
            agent_, method_, _ = key.split("|")
            return f"{agent_}|{method_}|off"

        blocks = {k: (lambda c=c: c.block_updates(args.block)) for k, c in cases.items()}
        res = interleaved(blocks, args.repeats, reference)
        for key, case in cases.items():
            r = res[key]
            ups, spread = r["median"], r["spread"]
            period = case.event_period()
            note = "blocks"
            if period and period > args.block:
                extra = case.event_seconds()
                per_update = 1.0 / ups + extra / period
                scale = (1.0 / ups) / per_update
                ups, spread = ups * scale, [s * scale for s in spread]
                note = f"steady-state blocks + one event ({extra * 1e3:.1f} ms) per {period} updates"
            rows.append(
                {
                    "agent": case.agent_name,
                    "env": case.env,
                    "method": case.method,
                    "mode": case.mode,
                    "device": device.type,
                    "updates_per_s": round(ups, 2),
                    "spread": [round(s, 2) for s in spread],
                    "ratio_to_eager": None if r["ratio"] is None else round(r["ratio"], 4),
                    "note": note,
                }
            )
        by_key = {(x["agent"], x["env"], x["method"], x["mode"]): x for x in rows}
        for x in rows:
            ref = by_key.get((x["agent"], x["env"], "none", x["mode"]))
            x["ratio_to_baseline"] = round(x["updates_per_s"] / ref["updates_per_s"], 4) if ref else None
        for case in cases.values():
            case.run.env.close()
    return rows


def measure_loop(args, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    for agent in args.agents:
        for method in [m for m in AGENT_METHODS[agent] if "@100" not in m]:
            if args.methods is not None and method.split("@")[0] not in args.methods:
                continue
            if args.loop_methods is not None and method.split("@")[0] not in args.loop_methods:
                continue
            cfg = run_config(agent, method, steps=1_000_000, start_steps=1000, small=args.quick)
            raw = json.loads(config.canonical_json(cfg))
            mode = args.modes[-1]
            rates = [loop_steps_per_s(raw, args.loop_steps, device.type, None, compile=mode) for _ in range(2)]
            rows.append(
                {
                    "agent": agent_name(agent),
                    "method": method,
                    "env": cfg.env,
                    "mode": mode,
                    "device": device.type,
                    "steps_per_s": round(statistics.median(rates), 2),
                    "spread": [round(min(rates), 2), round(max(rates), 2)],
                }
            )
            print(f"  loop {agent} {method}: {rows[-1]['steps_per_s']} steps/s", file=sys.stderr, flush=True)
    return rows


def packing_worker(seconds: float, mode: str) -> None:
    """One process of the packing scan: TD3 updates on the GPU for `seconds`; prints updates/s."""
    args = argparse.Namespace(backend=None, quick=False)
    case = Case("td3", "none", mode, torch.device("cuda"), 50, args)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        case.block_updates(50)
        n += 50
    print(json.dumps({"updates_per_s": n / (time.perf_counter() - t0)}))


def packing_scan(args) -> list[dict[str, Any]]:
    rows = []
    for k in args.packing:
        cmd = [sys.executable, __file__, "--packing-worker", str(args.packing_seconds), "--modes", args.modes[-1]]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(k)]
        rates = []
        for p in procs:
            out, _ = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"packing worker failed (k={k})")
            rates.append(json.loads(out.strip().splitlines()[-1])["updates_per_s"])
        rows.append(
            {
                "processes": k,
                "per_run_updates_per_s": round(statistics.median(rates), 2),
                "aggregate_updates_per_s": round(sum(rates), 2),
            }
        )
        print(f"  packing k={k}: {rows[-1]}", file=sys.stderr, flush=True)
    one = rows[0]["aggregate_updates_per_s"] if rows else None
    for r in rows:
        r["aggregate_gain"] = round(r["aggregate_updates_per_s"] / one, 3) if one else None
    return rows


def print_summary(result: dict[str, Any]) -> None:
    hw = result["hardware"]
    print(f"throughput on {hw['gpu'] or hw['cpu']} ({hw['device']}, {hw['torch_threads']} torch threads)")
    print(f"{'agent':<7}{'method':<24}{'mode':<9}{'updates/s':>11}{'spread':>18}{'vs eager':>10}{'vs none':>9}  env")
    for r in result["updates"]:
        spread = f"{r['spread'][0]:.1f}–{r['spread'][1]:.1f}"
        eager = f"{r['ratio_to_eager']:.3f}" if r["ratio_to_eager"] is not None else "-"
        base = f"{r['ratio_to_baseline']:.3f}" if r["ratio_to_baseline"] is not None else "-"
        print(
            f"{r['agent']:<7}{r['method']:<24}{r['mode']:<9}{r['updates_per_s']:>11.1f}{spread:>18}{eager:>10}{base:>9}"
            f"  {r.get('env', '')}"
        )
    for r in result["loop"]:
        print(f"loop {r['agent']:<6}{r['method']:<24}{r['mode']:<9}{r['steps_per_s']:>9.1f} env steps/s ({r['env']})")
    for r in result["packing"]:
        print(
            f"packing {r['processes']:>2} runs/GPU: per run {r['per_run_updates_per_s']:.0f} updates/s, "
            f"aggregate {r['aggregate_updates_per_s']:.0f} ({r['aggregate_gain']:.2f}× one run)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--modes", default=None, help="comma list of off, compile, graphs (default: by device)")
    ap.add_argument("--backend", default=None, help="torch.compile backend for mode compile (default: inductor)")
    ap.add_argument("--agents", default="td3,sac,drqv2")
    ap.add_argument("--methods", default=None, help="comma list of method names to keep (default: all per agent)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--block", type=int, default=300, help="updates per timed block")
    ap.add_argument("--loop-steps", type=int, default=300, help="loop iterations per loop measurement (0: skip)")
    ap.add_argument(
        "--loop-methods", default=None, help="comma list: loop measurements only for these (default: every method)"
    )
    ap.add_argument("--packing", default=",".join(map(str, PACKING)), help="processes per GPU to scan (CUDA)")
    ap.add_argument("--packing-seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smaller pixel inputs (a smoke check of the script)")
    ap.add_argument("--out", default=None, help="write the JSON here")
    ap.add_argument("--packing-worker", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    # As a training process does (neuroplastic.cli): without it, pixel updates spend ~44% of their time mapping
    # and unmapping their batches, and the rates stored here would not be the ones training gets.
    allocator = keep_freed_memory()
    limit_threads(args.threads)
    device = torch.device(args.device)
    args.modes = (
        args.modes.split(",") if args.modes else (["off", "compile", "graphs"] if device.type == "cuda" else ["off"])
    )
    if args.packing_worker is not None:
        packing_worker(args.packing_worker, args.modes[-1])
        return 0
    args.agents = args.agents.split(",")
    unknown = [a for a in args.agents if a not in AGENT_RUNS]
    if unknown:
        ap.error(f"unknown agents {unknown}; known: {', '.join(AGENT_RUNS)}")
    args.methods = set(args.methods.split(",")) if args.methods else None
    args.loop_methods = set(args.loop_methods.split(",")) if args.loop_methods else None
    args.packing = [int(k) for k in args.packing.split(",") if k] if device.type == "cuda" else []

    result: dict[str, Any] = {
        "format": 1,
        "published": False,
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hardware": hardware(device),
        "software": {"torch": torch.__version__, "python": platform.python_version(), "allocator": allocator.reason},
        "protocol": (
            f"interleaved blocks of {args.block} updates × {args.repeats} repeats, median and min–max; "
            f"loop: {args.loop_steps} loop iterations (env + owed updates) after 1000 random steps; "
            + ("clock: process CPU time (one thread)" if device.type == "cpu" else "clock: wall time")
        ),
    }
    result["updates"] = measure_updates(args, device)
    result["loop"] = measure_loop(args, device) if args.loop_steps > 0 else []
    result["packing"] = packing_scan(args) if args.packing else []
    print_summary(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
