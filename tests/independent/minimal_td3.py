"""An independent minimal TD3 (Fujimoto et al., 2018) for gymnasium MuJoCo tasks, kept as a yardstick for ours.

It imports nothing from `neuroplastic`: torch, numpy and gymnasium only, one file, read top to bottom. It exists
to answer "does our loop/agent compute what TD3 is?" without trusting any of our modules:

- `rng="lockstep"` draws every random number from the same generators, in the same order, as `neuroplastic`'s
  loop does (torch's global RNG for initialisation and target-policy noise, a `torch.Generator` seeded with the
  seed for replay indices, `numpy.random.default_rng(seed)` for exploration noise, the env's action space for
  the uniform start steps). A logically identical TD3 then gives bit-identical evaluation returns
  (tests/smoke/test_td3_independent.py holds us to that).
- `rng="natural"` draws as the TD3 author code does (numpy's global RNG for exploration noise and replay
  indices) with torch's default Adam: a second, unrelated stream of the same algorithm, for seed studies.

`schedule="episode_end"` makes the updates the steps after `start_steps` earned when the episode ends (or the run
does), as in the TD3 paper's protocol; `"step"` makes one update per env step.

CLI (the step-0 seed study of docs/validation.md):
    python tests/independent/minimal_td3.py --env Hopper-v4 --seed 3 --steps 150000 --out runs/s3.jsonl
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import random
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _layers(sizes: list[int]) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))


def _relu_stack(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for layer in layers[:-1]:
        x = F.relu(layer(x))
    return layers[-1](x)


class Policy(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], max_action: float) -> None:
        super().__init__()
        self.body = _layers([obs_dim, *hidden, act_dim])
        self.max_action = max_action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(_relu_stack(self.body, obs))


class TwinCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        self.first = _layers([obs_dim + act_dim, *hidden, 1])
        self.second = _layers([obs_dim + act_dim, *hidden, 1])

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], 1)
        return _relu_stack(self.first, x), _relu_stack(self.second, x)


def _seeded_env(env_id: str, seed: int) -> gym.Env:
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def evaluate(policy: Policy, env_id: str, seed: int, episodes: int) -> float:
    """Mean return of `episodes` noise-free episodes on a fresh env, reset with `seed` before the first."""
    env = _seeded_env(env_id, seed)
    total = 0.0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed) if episode == 0 else env.reset()
        ended = False
        while not ended:
            with torch.no_grad():
                action = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            ended = terminated or truncated
    env.close()
    return total / episodes


def train(
    env_id: str = "Hopper-v4",
    seed: int = 0,
    steps: int = 150_000,
    start_steps: int = 1000,
    hidden: tuple[int, ...] = (256, 256),
    lr: float = 1e-3,
    batch_size: int = 100,
    eval_every: int = 10_000,
    eval_episodes: int = 10,
    rng: str = "natural",
    schedule: str = "step",
    report: Callable[[int, float], None] | None = None,
) -> list[tuple[int, float]]:
    """Train TD3 (γ 0.99, τ 0.005, policy delay 2, target noise 0.2 clipped at 0.5, exploration noise 0.1; no
    terminal on a time limit) and return `(step, eval_return)` at every `eval_every` steps."""
    if rng not in ("natural", "lockstep") or schedule not in ("step", "episode_end"):
        raise ValueError(f"rng must be natural|lockstep and schedule step|episode_end, got {rng!r}, {schedule!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    env = _seeded_env(env_id, seed)
    obs, _ = env.reset(seed=seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    max_action = float(env.action_space.high[0])
    policy = Policy(obs_dim, act_dim, list(hidden), max_action)
    critic = TwinCritic(obs_dim, act_dim, list(hidden))
    policy_target, critic_target = copy.deepcopy(policy), copy.deepcopy(critic)
    # lockstep uses torch's fused Adam, as neuroplastic does; natural the author code's default kernel.
    adam = {"fused": True} if rng == "lockstep" else {}
    policy_opt = torch.optim.Adam(policy.parameters(), lr=lr, **adam)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=lr, **adam)

    states = np.zeros((steps, obs_dim), np.float32)
    actions = np.zeros((steps, act_dim), np.float32)
    rewards = np.zeros((steps, 1), np.float32)
    next_states = np.zeros((steps, obs_dim), np.float32)
    continues = np.zeros((steps, 1), np.float32)
    stored = 0
    index_gen = torch.Generator().manual_seed(seed)
    noise_gen = np.random.default_rng(seed)
    n_updates, owed = 0, 0
    curve: list[tuple[int, float]] = []

    def one_update() -> None:
        nonlocal n_updates
        if rng == "lockstep":
            idx = torch.randint(0, stored, (batch_size,), generator=index_gen).numpy()
        else:
            idx = np.random.randint(0, stored, size=batch_size)
        s, a, r, s2, c = (torch.as_tensor(x[idx]) for x in (states, actions, rewards, next_states, continues))
        n_updates += 1
        with torch.no_grad():
            smoothing = (torch.randn_like(a) * (0.2 * max_action)).clamp(-0.5 * max_action, 0.5 * max_action)
            a2 = (policy_target(s2) + smoothing).clamp(-max_action, max_action)
            y = r + c * 0.99 * torch.min(*critic_target(s2, a2))
        q1, q2 = critic(s, a)
        critic_opt.zero_grad(set_to_none=True)
        (F.mse_loss(q1, y) + F.mse_loss(q2, y)).backward()
        critic_opt.step()
        if n_updates % 2 == 0:
            policy_loss = -_relu_stack(critic.first, torch.cat([s, policy(s)], 1)).mean()
            policy_opt.zero_grad(set_to_none=True)
            policy_loss.backward()
            policy_opt.step()
            with torch.no_grad():
                for online, target in ((critic, critic_target), (policy, policy_target)):
                    for w, w_target in zip(online.parameters(), target.parameters(), strict=True):
                        w_target.lerp_(w, 0.005)

    for t in range(1, steps + 1):
        if t <= start_steps:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            if rng == "lockstep":
                noise = noise_gen.normal(0.0, 0.1 * max_action, size=act_dim)
            else:
                noise = np.random.normal(0.0, 0.1 * max_action, size=act_dim)
            action = (action + noise).clip(-max_action, max_action).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        states[stored], actions[stored], rewards[stored, 0] = obs, action, reward
        next_states[stored], continues[stored, 0] = next_obs, 0.0 if terminated else 1.0
        stored += 1
        episode_over = terminated or truncated
        obs = env.reset()[0] if episode_over else next_obs
        if t > start_steps:
            owed += 1
            if schedule == "step" or episode_over or t == steps:
                for _ in range(owed):
                    one_update()
                owed = 0
        if t % eval_every == 0:
            curve.append((t, evaluate(policy, env_id, seed + 100, eval_episodes)))
            if report:
                report(*curve[-1])
    env.close()
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="Hopper-v4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--start-steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--rng", choices=["natural", "lockstep"], default="natural")
    parser.add_argument("--schedule", choices=["step", "episode_end"], default="step")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSONL file: one {step, eval_return, wall_s} line per eval")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    with open(args.out, "w") as log:

        def report(step: int, value: float) -> None:
            line = {"step": step, "eval_return": value, "wall_s": round(time.monotonic() - started, 1)}
            log.write(json.dumps(line) + "\n")
            log.flush()

        train(
            args.env,
            args.seed,
            args.steps,
            args.start_steps,
            tuple(args.hidden),
            args.lr,
            args.batch_size,
            args.eval_every,
            args.eval_episodes,
            args.rng,
            args.schedule,
            report,
        )


if __name__ == "__main__":
    main()
