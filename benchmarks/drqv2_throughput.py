"""DrQ-v2 throughput: updates/s (ours vs a minimal inline DrQ-v2 update in the same process), replay sampling,
env frames/s on pixel DMC, and the memory of a 100k-transition pixel replay buffer.

Prints
  - updates/s of `neuroplastic`'s DrQ-v2 and of a minimal inline reference update (same shapes: 9×84×84,
    32-channel encoder, 50-d trunks, 1024-wide heads, batch 256, random shift, n-step target), and their ratio
    (median over alternating rounds; goal ≥ 0.9: the framework costs nothing);
  - replay samples/s: batches of 256 stacked transitions gathered from single frames;
  - env frames/s and renders/s of `dmc-pixels:<task>` with random actions (action repeat 2: 2 frames, 1 render);
  - the pixel replay's memory estimate and the measured RSS growth and peak RSS after filling `--buffer`
    transitions (default 100k).

    python benchmarks/drqv2_throughput.py [--device cpu|cuda] [--rounds 3] [--updates 10] [--buffer 100000]
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuroplastic import config, envs, loop
from neuroplastic.replay import Batch, PixelReplay


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RefDrQ:
    """The DrQ-v2 update written inline with plain nn.Sequential modules: the yardstick for framework overhead."""

    def __init__(self, act_dim: int, device: torch.device, nstep: int = 3) -> None:
        def head(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(i, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, o))

        self.enc = nn.Sequential(
            nn.Conv2d(9, 32, 3, stride=2), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.Flatten(),
        ).to(device)  # fmt: skip
        repr_dim = 32 * 35 * 35
        self.a_trunk = nn.Sequential(nn.Linear(repr_dim, 50), nn.LayerNorm(50), nn.Tanh()).to(device)
        self.pi = head(50, act_dim).to(device)
        self.c_trunk = nn.Sequential(nn.Linear(repr_dim, 50), nn.LayerNorm(50), nn.Tanh()).to(device)
        self.q1, self.q2 = head(50 + act_dim, 1).to(device), head(50 + act_dim, 1).to(device)
        self.critic = nn.ModuleList([self.c_trunk, self.q1, self.q2])
        self.critic_t = copy.deepcopy(self.critic)
        self.actor = nn.ModuleList([self.a_trunk, self.pi])
        self.opts = [torch.optim.Adam(m.parameters(), lr=1e-4) for m in (self.enc, self.actor, self.critic)]
        self.discount = 0.99**nstep

    @staticmethod
    def shift(x: torch.Tensor) -> torch.Tensor:
        # replicate-pad by 4, bilinear sample at an integer offset per image (exact at pixel centres)
        n, _, h, w = x.shape
        x = F.pad(x, (4, 4, 4, 4), mode="replicate")
        coords = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) * 2 / (h + 8) - 1
        grid = torch.stack(torch.meshgrid(coords, coords, indexing="xy"), -1)[None].expand(n, h, w, 2)
        off = torch.randint(0, 9, (n, 1, 1, 2), device=x.device).to(x.dtype) * 2 / (h + 8)
        return F.grid_sample(x, grid + off, padding_mode="zeros", align_corners=False)

    def q(self, critic: nn.ModuleList, z: torch.Tensor, a: torch.Tensor):
        ha = torch.cat([critic[0](z), a], -1)
        return critic[1](ha), critic[2](ha)

    def sample(self, z: torch.Tensor, std: float) -> torch.Tensor:
        mu = torch.tanh(self.pi(self.a_trunk(z)))
        x = mu + (torch.randn_like(mu) * std).clamp(-0.3, 0.3)
        return x - x.detach() + x.clamp(-1 + 1e-6, 1 - 1e-6).detach()

    def update(self, b: Batch) -> None:
        obs, nxt = self.shift(b.obs.float()), self.shift(b.next_obs.float())
        z = self.enc(obs / 255.0 - 0.5)
        with torch.no_grad():
            zn = self.enc(nxt / 255.0 - 0.5)
            t1, t2 = self.q(self.critic_t, zn, self.sample(zn, 0.5))
            y = b.reward + b.not_done * self.discount * torch.min(t1, t2)
        q1, q2 = self.q(self.critic, z, b.action)
        loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        enc_opt, actor_opt, critic_opt = self.opts
        enc_opt.zero_grad(set_to_none=True)
        critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        critic_opt.step()
        enc_opt.step()
        zd = z.detach()
        a1, a2 = self.q(self.critic, zd, self.sample(zd, 0.5))
        aloss = -torch.min(a1, a2).mean()
        actor_opt.zero_grad(set_to_none=True)
        aloss.backward()
        actor_opt.step()
        with torch.no_grad():
            online, target = list(self.critic.parameters()), list(self.critic_t.parameters())
            torch._foreach_lerp_(target, online, 0.01)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(update, batches: list[Batch], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for b in batches:
        update(b)
    _sync(device)
    return len(batches) / (time.perf_counter() - t0)


def fill(replay: PixelReplay, transitions: int, act_dim: int, episode: int = 500) -> None:
    """Random frames from a small pool (so filling measures the buffer, not the RNG)."""
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(64, 3, 84, 84), dtype=np.uint8)
    act = np.zeros(act_dim, dtype=np.float32)
    stack = np.concatenate([pool[0]] * 3)
    for t in range(transitions):
        nxt = np.concatenate([stack[3:], pool[t % 64]])
        end = (t + 1) % episode == 0
        replay.add(stack, act, 0.0, nxt, False, end)
        stack = np.concatenate([pool[(t + 1) % 64]] * 3) if end else nxt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--env", default="dmc-pixels:walker-walk")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=10, help="updates per round (CPU: ~1-2 s each)")
    ap.add_argument("--frames", type=int, default=200, help="env steps for the frames/s measurement")
    ap.add_argument("--buffer", type=int, default=100_000, help="transitions for the memory measurement (0 = skip)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    # --- updates/s ---------------------------------------------------------------------------------
    cfg = config.resolve({"agent": "drqv2", "env": args.env, "steps": 10_000, "start_steps": 0})
    run = loop.build(cfg, device)
    spec = run.agent.env
    ref = RefDrQ(spec.act_dim, device)
    g = torch.Generator(device=device).manual_seed(0)

    def batch() -> Batch:
        return Batch(
            torch.randint(0, 256, (256, 9, 84, 84), device=device, generator=g, dtype=torch.uint8),
            torch.rand(256, spec.act_dim, device=device, generator=g) * 2 - 1,
            torch.randn(256, 1, device=device, generator=g),
            torch.randint(0, 256, (256, 9, 84, 84), device=device, generator=g, dtype=torch.uint8),
            torch.ones(256, 1, device=device),
        )

    batches = [batch() for _ in range(min(args.updates, 16))]
    stream = [batches[i % len(batches)] for i in range(args.updates)]
    timed(run.agent.update, stream[:2], device)  # warm-up both
    timed(ref.update, stream[:2], device)
    ours, refs, ratios = [], [], []
    for _ in range(args.rounds):
        o, r = timed(run.agent.update, stream, device), timed(ref.update, stream, device)
        ours.append(o)
        refs.append(r)
        ratios.append(o / r)
    print(f"device {device}, torch threads {torch.get_num_threads()}, env {args.env}, batch 256, {args.rounds} rounds")
    print(f"neuroplastic DrQ-v2 {statistics.median(ours):9.2f} updates/s")
    print(f"reference DrQ-v2    {statistics.median(refs):9.2f} updates/s")
    print(f"ratio ours/ref      {statistics.median(ratios):9.3f}   (median over rounds; goal >= 0.9)")
    agent = run.agent
    del run, ref, batches, stream

    # --- env frames/s --------------------------------------------------------------------------------
    env = envs.make_env(args.env, 0)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(args.frames):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t0
    print(
        f"env                 {args.frames * env.action_repeat / dt:9.1f} frames/s   ({args.frames / dt:.1f} renders/s)"
    )

    # --- replay memory and sampling ------------------------------------------------------------------
    if args.buffer:
        before = rss_bytes()
        replay: PixelReplay = agent.make_replay(args.buffer, seed=0)  # sized and placed as in a run
        est = PixelReplay.estimate_bytes(replay.capacity, (9, 84, 84), spec.act_dim)
        print(f"replay frames on   {replay.frames_device}")
        t0 = time.perf_counter()
        fill(replay, args.buffer, spec.act_dim)
        fill_s = time.perf_counter() - t0
        grown = rss_bytes() - before
        print(
            f"replay {args.buffer} transitions: estimate {est / 2**30:.3f} GiB "
            f"({est / args.buffer:.0f} B/transition), RSS growth {grown / 2**30:.3f} GiB, "
            f"peak RSS {peak_rss_bytes() / 2**30:.3f} GiB, filled in {fill_s:.1f} s"
        )
        replay.sample(256)
        t0 = time.perf_counter()
        n = 20
        for _ in range(n):
            replay.sample(256)
        _sync(device)
        print(f"replay sampling     {n / (time.perf_counter() - t0):9.1f} batches/s of 256 (stacks from single frames)")


if __name__ == "__main__":
    main()
