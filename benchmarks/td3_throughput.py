"""TD3 update throughput: ours vs a minimal inline TD3 in plain PyTorch, measured in the same process.

Prints updates/s of both, their ratio (goal ≥ 0.9: the framework costs nothing), the FLOPs of one update
(counted by torch's FlopCounterMode), the measured matmul GFLOP/s of this machine, and the fraction of the
FLOP-bound limit each implementation reaches. Rounds alternate between the two implementations so that machine
noise hits both alike; the ratio is the median over rounds.

    python benchmarks/td3_throughput.py [--device cpu|cuda] [--rounds 5] [--updates 300] [--env Hopper-v4]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from neuroplastic import config, loop
from neuroplastic.replay import Batch


class RefActor(nn.Module):
    def __init__(self, s: int, a: int, m: float) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(s, 256), nn.Linear(256, 256), nn.Linear(256, a)
        self.m = m

    def forward(self, s):
        return self.m * torch.tanh(self.l3(F.relu(self.l2(F.relu(self.l1(s))))))


class RefCritic(nn.Module):
    def __init__(self, s: int, a: int) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(s + a, 256), nn.Linear(256, 256), nn.Linear(256, 1)
        self.l4, self.l5, self.l6 = nn.Linear(s + a, 256), nn.Linear(256, 256), nn.Linear(256, 1)

    def forward(self, s, a):
        sa = torch.cat([s, a], 1)
        q1 = self.l3(F.relu(self.l2(F.relu(self.l1(sa)))))
        q2 = self.l6(F.relu(self.l5(F.relu(self.l4(sa)))))
        return q1, q2

    def q1(self, s, a):
        sa = torch.cat([s, a], 1)
        return self.l3(F.relu(self.l2(F.relu(self.l1(sa)))))


class RefTD3:
    """The author code's update, written inline: the yardstick for framework overhead."""

    def __init__(self, s: int, a: int, m: float, device: torch.device) -> None:
        self.actor = RefActor(s, a, m).to(device)
        self.actor_t = copy.deepcopy(self.actor)
        self.critic = RefCritic(s, a).to(device)
        self.critic_t = copy.deepcopy(self.critic)
        self.aopt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.copt = torch.optim.Adam(self.critic.parameters(), lr=3e-4)
        self.m, self.it = m, 0

    def update(self, b: Batch) -> None:
        self.it += 1
        with torch.no_grad():
            noise = (torch.randn_like(b.action) * 0.2 * self.m).clamp(-0.5 * self.m, 0.5 * self.m)
            na = (self.actor_t(b.next_obs) + noise).clamp(-self.m, self.m)
            t1, t2 = self.critic_t(b.next_obs, na)
            y = b.reward + b.not_done * 0.99 * torch.min(t1, t2)
        q1, q2 = self.critic(b.obs, b.action)
        loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.copt.zero_grad()
        loss.backward()
        self.copt.step()
        if self.it % 2 == 0:
            aloss = -self.critic.q1(b.obs, self.actor(b.obs)).mean()
            self.aopt.zero_grad()
            aloss.backward()
            self.aopt.step()
            with torch.no_grad():
                for p, tp in zip(self.critic.parameters(), self.critic_t.parameters(), strict=True):
                    tp.data.copy_(0.005 * p.data + 0.995 * tp.data)
                for p, tp in zip(self.actor.parameters(), self.actor_t.parameters(), strict=True):
                    tp.data.copy_(0.005 * p.data + 0.995 * tp.data)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_updates(update, batches: list[Batch], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for b in batches:
        update(b)
    _sync(device)
    return len(batches) / (time.perf_counter() - t0)


def matmul_gflops(device: torch.device, n: int = 256, reps: int = 400) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(20):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def update_flops(update, batch: Batch) -> int:
    """FLOPs of two updates (one policy-delay cycle) divided by two."""
    with FlopCounterMode(display=False) as counter:
        update(batch)
        update(batch)
    return counter.get_total_flops() // 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--env", default="Hopper-v4")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    cfg = config.resolve({"agent": "td3", "env": args.env, "steps": 10_000, "start_steps": 0})
    run = loop.build(cfg, device)
    spec = run.agent.env
    ref = RefTD3(spec.obs_dim, spec.act_dim, spec.max_action, device)
    g = torch.Generator(device=device).manual_seed(0)

    def batch() -> Batch:
        return Batch(
            torch.randn(256, spec.obs_dim, device=device, generator=g),
            torch.rand(256, spec.act_dim, device=device, generator=g) * 2 - 1,
            torch.randn(256, 1, device=device, generator=g),
            torch.randn(256, spec.obs_dim, device=device, generator=g),
            torch.ones(256, 1, device=device),
        )

    batches = [batch() for _ in range(64)]
    stream = [batches[i % len(batches)] for i in range(args.updates)]
    ours_f = update_flops(run.agent.update, batches[0])
    ref_f = update_flops(ref.update, batches[0])
    timed_updates(run.agent.update, stream[:50], device)  # warm-up both
    timed_updates(ref.update, stream[:50], device)

    ours, refs, ratios = [], [], []
    for _ in range(args.rounds):
        o = timed_updates(run.agent.update, stream, device)
        r = timed_updates(ref.update, stream, device)
        ours.append(o)
        refs.append(r)
        ratios.append(o / r)
    gflops = matmul_gflops(device)
    o_med, r_med = statistics.median(ours), statistics.median(refs)
    print(f"device {device}, torch threads {torch.get_num_threads()}, env {args.env}, batch 256, {args.rounds} rounds")
    print(f"neuroplastic TD3   {o_med:9.1f} updates/s   ({ours_f / 1e6:.1f} MFLOP/update)")
    print(f"reference TD3      {r_med:9.1f} updates/s   ({ref_f / 1e6:.1f} MFLOP/update)")
    print(f"ratio ours/ref     {statistics.median(ratios):9.3f}   (median over rounds; goal >= 0.9)")
    print(f"matmul 256x256     {gflops:9.1f} GFLOP/s")
    print(f"FLOP-bound limit   {gflops * 1e9 / ours_f:9.1f} updates/s")
    limit = gflops * 1e9
    print(f"fraction of limit  ours {o_med * ours_f / limit:.3f}, reference {r_med * ref_f / limit:.3f}")


if __name__ == "__main__":
    main()
