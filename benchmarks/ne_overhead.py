"""NE-TD3 vs plain TD3 update throughput, measured in one process (a ratio, so machine speed cancels out).

Each configuration runs the loop's update path (`on_sample` → `agent.update` → `on_update`) on a replay buffer of
random transitions. Blocks of `--block` updates are interleaved across configurations and repeated `--repeats`
times, rotating the order, so slow drifts of a shared machine hit every configuration alike; the reported
ratio is the median over repeats of (NE block time / TD3 block time of the same repeat).

- Δ=100: blocks contain topology updates, so the measured time includes them.
- Δ=10⁴: a block rarely contains one, so the steady-state cost (mask application after every optimizer and
  target update, review bookkeeping) is measured in blocks, and the cost of one topology update of every
  growing network is measured separately and amortised over Δ updates.

Usage: python benchmarks/ne_overhead.py [--device cpu|cuda] [--threads 1] [--repeats 5] [--block 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from neuroplastic.agents.td3 import TD3, TD3Params
from neuroplastic.envs import EnvSpec
from neuroplastic.methods import METHODS, MethodStack, RunContext
from neuroplastic.replay import ReplayBuffer


def build(method: dict | None, device: torch.device, obs: int, act: int, critic: str, buffer: int):
    ctx = RunContext(seed=0, steps=1_025_000, start_steps=25_000, device=device)
    methods = []
    if method:
        cls = METHODS[method["name"]]
        methods.append(cls(cls.Params.model_validate({k: v for k, v in method.items() if k != "name"}), ctx))
    stack = MethodStack(methods)
    torch.manual_seed(0)
    agent = TD3(TD3Params(critic=critic), EnvSpec(obs, act, 1.0, 1000), device, stack, seed=0)
    replay = ReplayBuffer(obs, act, buffer, device, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(buffer):
        replay.add(rng.normal(size=obs), rng.uniform(-1, 1, size=act), float(rng.normal()), rng.normal(size=obs), False)
    return agent, stack, replay


def run_block(agent, stack, replay, n: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        batch = stack.on_sample(agent, replay, 0)
        if batch is None:
            batch = replay.sample(agent.params.batch_size)
        agent.update(batch)
        stack.on_update(agent, batch, 0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def topology_update_seconds(agent, stack, replay, device: torch.device, repeats: int = 3) -> float:
    """Wall time of one topology update of every growing network (dormancy pass included), median of repeats."""
    ne = stack.methods[0]
    times = []
    for _ in range(repeats):
        batch = replay.sample(agent.params.batch_size)
        agent.update(batch)  # fresh gradients on every network
        stack.on_update(agent, batch, 0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dormant = None
        if ne.pruner.needs_activations and ne.last_batch is not None:
            dormant = ne.pruner.dormant_features(agent, list(ne.growth), ne.last_batch)
        for role, growth in ne.growth.items():
            growth.update(agent.updates, agent.optimizers[role], ne.pruner, dormant, ne.generator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def hook_seconds_per_update(agent, stack, replay, device: torch.device, n: int = 300) -> float:
    """Direct timing of NE's per-update work outside topology updates: mask application after the critic's
    (every update) and the actor's (every `policy_delay`) optimizer steps, target masking after each Polyak
    update, and the review bookkeeping in `on_sample`/`on_update`. Much less noisy than block differences."""
    ne = stack.methods[0]
    delay = agent.params.policy_delay
    batch = replay.sample(agent.params.batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(n):
        stack.on_sample(agent, replay, 0)
        ne.after_optimizer_step(agent, "critic", i)
        if i % delay == 0:
            ne.after_optimizer_step(agent, "actor", i)
            ne.after_target_update(agent)
        stack.on_update(agent, batch, 0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--block", type=int, default=300, help="updates per timed block")
    ap.add_argument("--obs", type=int, default=17, help="observation size (HalfCheetah: 17)")
    ap.add_argument("--act", type=int, default=6)
    ap.add_argument("--critic", default="ne", choices=["td3", "ne"])
    ap.add_argument("--presets", default="ne,ne_code")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    configs: dict[str, dict | None] = {"td3": None}
    for preset in args.presets.split(","):
        for delta in (100, 10_000):
            configs[f"{preset} Δ={delta}"] = {"name": preset, "delta": delta}
    built = {name: build(m, device, args.obs, args.act, args.critic, buffer=20_000) for name, m in configs.items()}
    for agent, stack, replay in built.values():
        run_block(agent, stack, replay, 20, device)  # warm-up (allocations, Adam state)

    times: dict[str, list[float]] = {name: [] for name in configs}
    names = list(configs)
    for rep in range(args.repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            times[name].append(run_block(*built[name], args.block, device))

    topo = {name: topology_update_seconds(*built[name], device) for name, m in configs.items() if m}
    hooks = {name: hook_seconds_per_update(*built[name], device) for name, m in configs.items() if m}
    print(
        f"device={device} threads={args.threads} obs={args.obs} act={args.act} critic={args.critic} "
        f"block={args.block} repeats={args.repeats}"
    )
    base = times["td3"]
    td3_update = statistics.median(base) / args.block
    print(f"{'config':<18}{'updates/s':>11}{'ratio vs TD3':>14}{'NE cost':>9}{'est. cost':>11}  note")
    print(f"{'td3':<18}{1 / td3_update:>11.1f}{1.0:>14.3f}{'':>9}{'':>11}")
    for name, m in configs.items():
        if m is None:
            continue
        delta = m["delta"]
        ratios = [b / t for t, b in zip(times[name], base, strict=True)]  # throughput ratio NE/TD3
        ups = args.block / statistics.median(times[name])
        note = "measured, topology updates inside the blocks"
        ratio = statistics.median(ratios)
        if delta > args.block:
            # steady state measured; add one topology update per Δ updates
            per_update = 1.0 / ups + topo[name] / delta
            ratio = ratio * (1.0 / ups) / per_update
            ups = 1.0 / per_update
            note = f"steady state + one topology update ({topo[name] * 1e3:.1f} ms) per Δ"
        # Component estimate: per-update hook work plus one topology update per Δ, over a TD3 update.
        estimate = (hooks[name] + topo[name] / delta) / td3_update
        print(f"{name:<18}{ups:>11.1f}{ratio:>14.3f}{100 * (1 / ratio - 1):>8.1f}%{100 * estimate:>10.1f}%  {note}")
    print(
        "NE cost = time per update relative to TD3 − 1 (from interleaved blocks); est. cost = (NE's per-update "
        "hook time + topology-update time / Δ) / TD3 update time, timed directly."
    )
    for name in hooks:
        print(f"  {name}: hooks {hooks[name] * 1e6:.0f} µs/update, topology update {topo[name] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
