"""PPO with the clipped surrogate (Schulman et al. 2017) for continuous control, as the sparse-training study ran
it: tf-agents `PPOClipAgent` through rigl's `ppo_train_eval.py` + `ppo_mujoco_dense_config.gin` at
google-research/rigl d39fc7d (every value and its source: docs/deviations.md, "Sparse-training study: PPO, DQN,
Atari, scaled dense").

Networks (roles), those of rigl's `sparse_ppo_actor_network.py` and `sparse_value_network.py`:
  "actor" = MLP s→64→64→|A| (tanh), orthogonal hidden kernels (gain 1), the mean layer VarianceScaling(0.1,
  fan_in, truncated normal); its output u gives the Gaussian mean c + m·tanh(u) (tanh-squashed and scaled to the
  action bounds [c − m, c + m]); the std is softplus(b) of a state-independent bias b starting at
  softplus⁻¹(0.35), so σ = 0.35 at the start;
  "critic" = the value MLP s→64→64→1 (ReLU, the value network's default activation), orthogonal hidden kernels
  (gain 1), the output kernel U(−0.03, 0.03). Biases start at 0. Both are `MLP`s of `MaskedLinear` layers, so
  every sparse method's default roles (actor, critic) reach them.

Training, one iteration per `rollout_length` (2048) env steps:
  1. the loop fills the agent's `RolloutStore` through `collect` (raw observations, the raw Gaussian sample as
     the action, rewards, terminated/truncated, next observations); the env receives the sample clipped to the
     action bounds;
  2. when it is full, the observation and reward normalisers absorb the rollout (running mean/variance);
     observations are normalised (x − μ)/√(σ² + 1e-8) clipped to ±`obs_clip`; rewards are divided by
     √(σ_r² + 1e-8) (not centred) and clipped to ±`reward_clip` (tf-agents' normalisers);
  3. with the updated normalisers: values V(s), V(s'), old log-probabilities, GAE(γ, λ) advantages
     δ_t = r_t + γ(1 − terminated_t)V(s'_t) − V(s_t), A_t = δ_t + γλ(1 − done_t)A_{t+1} (time limits
     bootstrap through V(s'_t) but still cut the recursion), returns R_t = A_t + V(s_t);
  4. `epochs` (10) passes over random minibatches of `batch_size` (64): each is one gradient update
     (`agent.update`) of actor and critic together: loss = −mean(min(ρA, clip(ρ, 1±ε)A)) + c_v·mean((R − V)²)
     − c_e·entropy + λ_wd·Σ‖W‖² (tf-agents' L2 on every actor and value kernel: Σ tf.square), advantages
     normalised per minibatch, the global gradient norm clipped to `max_grad_norm`, then one Adam step per role
     (method hooks around each). The learning rate decays linearly with the iteration: lr·(1 − i/I),
     I = steps // rollout_length.
So 1M env steps make 488 iterations × 320 updates = 156,160 updates (the study's 489 iterations: 156,480);
`planned_updates` reports that number to schedules. Evaluation acts with the (squashed) mean, clipped. Minibatch
order uses the agent's numpy generator; everything is checkpointed (normalisers, store, iteration).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from neuroplastic import envs
from neuroplastic.agents.base import Agent, AgentParams
from neuroplastic.nets import MLP, MLPSpec, sum_of_squares
from neuroplastic.replay import Batch, Replay

NORM_EPS = 1e-8
# Keras' VarianceScaling with a truncated normal divides the std by this (the std of N(0, 1) truncated at ±2).
TRUNCATED_NORMAL_STD = 0.87962566103423978


class PPOParams(AgentParams):
    hidden: int = Field(64, gt=0, description="Width of every hidden layer of the actor and value MLPs.")
    layers: int = Field(2, gt=0, description="Hidden layers of each MLP.")
    activation: str = Field("tanh", description="Hidden activation of the actor MLP (rigl PPO actor: tanh).")
    value_activation: str = Field("relu", description="Hidden activation of the value MLP (rigl ValueNetwork: relu).")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate at the first iteration.")
    lr_decay: bool = Field(True, description="Decay the lr linearly to 0 over the iterations (rigl ppo_train_eval).")
    adam_eps: float = Field(1e-5, gt=0)
    rollout_length: int = Field(2048, gt=0, description="Env steps per iteration (collect_sequence_length).")
    batch_size: int = Field(64, gt=0, description="Minibatch size of each gradient update.")
    epochs: int = Field(10, gt=0, description="Passes over each rollout.")
    gamma: float = Field(0.99, ge=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    clip_ratio: float = Field(0.2, gt=0, description="ε of the clipped importance ratio.")
    value_coef: float = Field(0.5, ge=0, description="c_v of c_v·mean((R − V)²).")
    entropy_coef: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(0.5, gt=0, description="Global gradient-norm clip (None = off).")
    weight_decay: float = Field(
        1e-6, ge=0, description="λ of λ·Σ‖W‖² on actor and value kernels (tf-agents PPO L2; study dense: 1e-6)."
    )
    normalize_advantages: bool = Field(True, description="Per-minibatch (A − mean)/√(var + 1e-8).")
    normalize_observations: bool = Field(True)
    normalize_rewards: bool = Field(True)
    obs_clip: float = Field(10.0, gt=0)
    reward_clip: float = Field(10.0, gt=0)
    init_std: float = Field(0.35, gt=0, description="Initial σ = softplus(bias) of the Gaussian policy.")
    squash_mean: bool = Field(True, description="Mean = c + m·tanh(u), inside the action bounds (rigl PPO actor).")


class PPOBatch(NamedTuple):
    obs: torch.Tensor  # raw observations (normalised inside the update)
    action: torch.Tensor  # raw Gaussian samples
    old_log_prob: torch.Tensor  # (B,)
    advantage: torch.Tensor  # (B,)
    ret: torch.Tensor  # (B,)


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and λ-returns of a rollout (1-D tensors of length T, time order).

    `terminated` zeroes the bootstrap V(s'); `done` (terminated or truncated) stops the recursion; the last step
    of the rollout bootstraps through its own V(s')."""
    not_term = 1.0 - terminated.float()
    not_done = 1.0 - done.float()
    deltas = rewards + gamma * not_term * next_values - values
    adv = torch.zeros_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_done[t] * running
        adv[t] = running
    return adv, adv + values


def clipped_surrogate(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor, clip: float
) -> torch.Tensor:
    """−mean(min(ρA, clip(ρ, 1 − ε, 1 + ε)A)), ρ = exp(log π − log π_old)."""
    ratio = torch.exp(log_prob - old_log_prob)
    return -torch.minimum(ratio * advantage, ratio.clamp(1.0 - clip, 1.0 + clip) * advantage).mean()


class RunningMeanVar:
    """Streaming mean and (population) variance over batches (Chan et al.'s parallel update), float64.

    `mean` and `var` are updated in place (also by `load_state_dict`): the captured update (capture.py) holds the
    tensors it read, so a new tensor would go stale in a CUDA graph and recompile a compiled update."""

    def __init__(self, shape: tuple[int, ...], device: torch.device) -> None:
        self.count = 0
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> None:
        x = x.to(torch.float64)
        n = x.shape[0]
        mean, var = x.mean(0), x.var(0, unbiased=False)
        if self.count == 0:
            self.mean.copy_(mean)
            self.var.copy_(var)
            self.count = n
            return
        total = self.count + n
        delta = mean - self.mean
        var = (self.var * self.count + var * n + delta.pow(2) * (self.count * n / total)) / total
        self.mean.add_(delta * (n / total))
        self.var.copy_(var)
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        # Copies: the live tensors change in place.
        return {"count": self.count, "mean": self.mean.to("cpu", copy=True), "var": self.var.to("cpu", copy=True)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state["count"]
        self.mean.copy_(state["mean"])
        self.var.copy_(state["var"])


class RolloutStore(Replay):
    """The on-policy rollout the loop fills through `collect` (the replay buffer's `add`), `length` steps.

    `full` tells the agent to train; `clear` starts the next rollout. The last rollout's rows stay readable
    (`sample`, `__len__`) until overwritten, so plasticity metrics at log intervals always have data. The action
    stored is the agent's raw Gaussian sample (`agent.last_sample`), not the clipped action the env received.
    """

    def __init__(self, agent: PPO, obs_dim: int, act_dim: int, length: int, device: torch.device, seed: int) -> None:
        self.agent = agent
        # Only metrics sample the store (with their own generator); the Replay interface asks for one anyway.
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.length = length
        self.device = device
        self.obs = torch.zeros((length, obs_dim), dtype=torch.float32, device=device)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros((length, act_dim), dtype=torch.float32, device=device)
        self.reward = torch.zeros(length, dtype=torch.float32, device=device)
        self.terminated = torch.zeros(length, dtype=torch.bool, device=device)
        self.truncated = torch.zeros(length, dtype=torch.bool, device=device)
        self.pos = 0
        self.filled = 0

    def __len__(self) -> int:
        return self.filled

    @property
    def full(self) -> bool:
        return self.pos == self.length

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool = False,
    ) -> None:
        if self.full:
            raise RuntimeError("rollout store is full: the agent must train on it before collecting more")
        i = self.pos
        sample = self.agent.last_sample if self.agent.last_sample is not None else action
        self.obs[i] = torch.as_tensor(obs, dtype=torch.float32)
        self.action[i] = torch.as_tensor(sample, dtype=torch.float32)
        self.reward[i] = float(reward)
        self.next_obs[i] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.terminated[i] = bool(terminated)
        self.truncated[i] = bool(truncated)
        self.agent.last_sample = None
        self.pos += 1
        self.filled = max(self.filled, self.pos)

    def clear(self) -> None:
        self.pos = 0

    def indices(
        self, batch_size: int, oldest: float | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Uniform rows of the stored rollout (for plasticity metrics); `oldest` is ignored."""
        if self.filled == 0:
            raise RuntimeError("cannot sample from an empty rollout store")
        g = self.generator if generator is None else generator
        return torch.randint(0, self.filled, (batch_size,), generator=g, device=self.device)

    def gather(self, idx: torch.Tensor) -> Batch:
        not_done = (~self.terminated[idx]).float()[:, None]
        return Batch(self.obs[idx], self.action[idx], self.reward[idx, None], self.next_obs[idx], not_done)

    def state_dict(self) -> dict[str, Any]:
        n = self.filled
        keys = ("obs", "next_obs", "action", "reward", "terminated", "truncated")
        state = {k: getattr(self, k)[:n].cpu().clone() for k in keys}
        return {"pos": self.pos, "filled": n, "generator": self.generator.get_state(), **state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["filled"]
        for key in ("obs", "next_obs", "action", "reward", "terminated", "truncated"):
            getattr(self, key)[:n] = state[key].to(self.device)
        self.pos, self.filled = state["pos"], n
        self.generator.set_state(state["generator"])


def softplus_inverse(y: float) -> float:
    """x with softplus(x) = y (> 0): log(exp(y) − 1)."""
    return math.log(math.expm1(y))


class GaussianActor(nn.Module):
    """MLP(s) → u; mean = c + m·tanh(u) (`squash`, bounds [c − m, c + m]) or u; σ = softplus(b) of a
    state-independent bias b; actions a ~ N(mean, σ²), unsquashed (the env gets them clipped)."""

    def __init__(self, spec: MLPSpec, init_std: float, squash: bool, max_action: float) -> None:
        super().__init__()
        self.net = MLP(spec)
        self.squash = squash
        self.max_action = float(max_action)
        self.std_bias = nn.Parameter(torch.full((spec.out_dim,), softplus_inverse(init_std)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The Gaussian mean."""
        u = self.net(obs)
        # Symmetric bounds (every MuJoCo task here): centre c = 0, magnitude m = max_action.
        return self.max_action * torch.tanh(u) if self.squash else u

    def std(self) -> torch.Tensor:
        return F.softplus(self.std_bias)

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-density of `action` (summed over dimensions) and the entropy, both (B,)."""
        mean, std = self(obs), self.std()
        log_std = torch.log(std)
        z = (action - mean) / std
        log_prob = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (log_std + 0.5 * (1.0 + math.log(2 * math.pi))).sum().expand(log_prob.shape)
        return log_prob, entropy


@torch.no_grad()
def init_ppo_network(mlp: MLP, role: str) -> None:
    """rigl's PPO inits: hidden kernels orthogonal (gain 1); the actor's mean layer VarianceScaling(0.1, fan_in,
    truncated normal at ±2σ); the value output U(−0.03, 0.03); every bias 0."""
    for layer in mlp.layers:
        nn.init.orthogonal_(layer.weight, gain=1.0)
        layer.bias.zero_()
    out = mlp.layers[-1]
    if role == "actor":
        std = math.sqrt(0.1 / out.in_features) / TRUNCATED_NORMAL_STD
        nn.init.trunc_normal_(out.weight, std=std, a=-2 * std, b=2 * std)
    else:
        out.weight.uniform_(-0.03, 0.03)


class PPO(Agent):
    name = "ppo"
    Params = PPOParams
    on_policy = True
    log_names = ("policy_loss", "value_loss", "entropy", "clip_fraction")
    params: PPOParams

    def __init__(self, params: PPOParams, env, device, methods, seed: int) -> None:
        super().__init__(params, env, device, methods, seed)
        if env.n_actions:
            raise ValueError("agent 'ppo' is implemented for continuous actions (Box action spaces) only")
        if params.batch_size > params.rollout_length:
            raise ValueError(f"batch_size {params.batch_size} > rollout_length {params.rollout_length}")
        self.nets["actor"] = self.build_net("actor")
        self.nets["critic"] = self.build_net("critic")
        self._finish_build()
        self.obs_norm = RunningMeanVar((env.obs_dim,), device)
        self.reward_norm = RunningMeanVar((), device)
        self.iterations = 0
        self.total_iterations = 1
        self.last_sample: np.ndarray | None = None

    @classmethod
    def config_problems(cls, cfg, params: dict) -> list[str]:
        problems = []
        if cfg.env in envs.CLASSIC_IDS or cfg.env.startswith("ALE/"):
            problems.append(f"agent 'ppo' is implemented for continuous actions; env {cfg.env!r} is discrete")
        if cfg.start_steps != 0:
            problems.append(f"agent 'ppo' is on-policy: start_steps must be 0, got {cfg.start_steps}")
        rollout = params.get("rollout_length", 2048)
        if cfg.steps < rollout:
            problems.append(f"agent 'ppo': steps {cfg.steps} < rollout_length {rollout}: it would never update")
        return problems

    # --- construction ---------------------------------------------------------------------------
    def net_specs(self) -> dict[str, MLPSpec]:
        p, e = self.params, self.env
        hidden = (p.hidden,) * p.layers
        return {
            "actor": MLPSpec(e.obs_dim, hidden, e.act_dim, activation=p.activation),
            "critic": MLPSpec(e.obs_dim, hidden, 1, activation=p.value_activation),
        }

    def build_net(self, role: str) -> nn.Module:
        spec = self.methods.net_spec(role, self.net_specs()[role])
        p = self.params
        if role == "actor":
            net = GaussianActor(spec, p.init_std, p.squash_mean, self.env.max_action)
            mlp = net.net
        elif role == "critic":
            net = mlp = MLP(spec)
        else:
            raise KeyError(role)
        init_ppo_network(mlp, role)
        return net.to(self.device)

    def make_optimizer(self, role: str) -> torch.optim.Optimizer:
        return self.adam(role, lr=self.params.lr, eps=self.params.adam_eps)

    def make_replay(self, capacity: int, seed: int) -> RolloutStore:
        self.total_iterations = max(1, capacity // self.params.rollout_length)
        # The loop passes the run's env steps as the capacity of agents without a buffer size: the lr decay
        # spans the iterations they make.
        return RolloutStore(self, self.env.obs_dim, self.env.act_dim, self.params.rollout_length, self.device, seed)

    def minibatches_per_epoch(self) -> int:
        return self.params.rollout_length // self.params.batch_size

    def planned_updates(self, train_steps: int, ratio: float = 1.0) -> int:
        """Full rollouts × epochs × minibatches (the replay ratio does not apply on-policy)."""
        p = self.params
        return max(1, (train_steps // p.rollout_length) * p.epochs * self.minibatches_per_epoch())

    # --- normalisation --------------------------------------------------------------------------
    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.params.normalize_observations:
            return obs
        c = self.params.obs_clip
        std = torch.sqrt(self.obs_norm.var + NORM_EPS)
        return ((obs - self.obs_norm.mean) / std).clamp(-c, c).to(torch.float32)

    def normalize_rewards(self, rewards: torch.Tensor) -> torch.Tensor:
        if not self.params.normalize_rewards:
            return rewards
        c = self.params.reward_clip
        return (rewards / torch.sqrt(self.reward_norm.var + NORM_EPS)).clamp(-c, c).to(torch.float32)

    # --- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        o = self.normalize_obs(torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0))
        actor = self.nets["actor"]
        mean = actor(o)[0]
        if explore:
            sample = mean + actor.std() * torch.randn_like(mean)
            self.last_sample = sample.cpu().numpy().astype(np.float32)
            out = self.last_sample
        else:
            out = mean.cpu().numpy().astype(np.float32)
        bound = self.env.max_action
        return np.clip(out, -bound, bound)

    # --- learning -------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, store: RolloutStore) -> PPOBatch:
        """Normalisers absorb the rollout, then old log-probs, advantages and returns under them."""
        p = self.params
        if p.normalize_observations:
            self.obs_norm.update(store.obs)
        if p.normalize_rewards:
            self.reward_norm.update(store.reward)
        obs, next_obs = self.normalize_obs(store.obs), self.normalize_obs(store.next_obs)
        critic = self.nets["critic"]
        values, next_values = critic(obs).squeeze(-1), critic(next_obs).squeeze(-1)
        done = store.terminated | store.truncated
        adv, ret = gae(
            self.normalize_rewards(store.reward), values, next_values, store.terminated, done, p.gamma, p.gae_lambda
        )
        old_log_prob, _ = self.nets["actor"].log_prob(obs, store.action)
        return PPOBatch(store.obs.clone(), store.action.clone(), old_log_prob, adv, ret)

    def rollout_batches(self, store: RolloutStore):
        """After each env step: nothing until the rollout is full, then `epochs` × minibatches of it."""
        if not store.full:
            return
        p = self.params
        data = self.prepare(store)
        store.clear()
        lr = p.lr * (1.0 - self.iterations / self.total_iterations) if p.lr_decay else p.lr
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        self.iterations += 1
        n_mb, size = self.minibatches_per_epoch(), p.batch_size
        for _ in range(p.epochs):
            order = torch.as_tensor(self.rng.permutation(p.rollout_length), device=self.device)
            for k in range(n_mb):
                idx = order[k * size : (k + 1) * size]
                yield PPOBatch(*(x[idx] for x in data))

    def decayed_kernels(self) -> list[torch.Tensor]:
        """The linear kernels weight decay acts on, read from the networks at each update: Reset and Plasticity
        Injection replace modules, so a list kept from build time would decay tensors no longer trained."""
        return [m.weight for r in ("actor", "critic") for m in self.nets[r].modules() if hasattr(m, "mask")]

    def l2_penalty(self) -> torch.Tensor:
        """λ·Σ‖W‖² over the actor and value kernels: tf-agents' PPO L2 sums tf.square (no ½, unlike tf.nn.l2_loss)."""
        return self.params.weight_decay * sum_of_squares(self.decayed_kernels())

    def learn(self, batch: PPOBatch, update: int, policy: bool) -> None:
        """One minibatch gradient step of actor and critic together (`policy` is always True). Reads the
        normalisers' tensors, which `prepare` updates in place, and the lr the host set in the param groups."""
        p = self.params
        obs = self.normalize_obs(batch.obs)
        log_prob, entropy = self.nets["actor"].log_prob(obs, batch.action)
        adv = batch.advantage
        if p.normalize_advantages:
            adv = (adv - adv.mean()) / torch.sqrt(adv.var(unbiased=False) + NORM_EPS)
        policy_loss = clipped_surrogate(log_prob, batch.old_log_prob, adv, p.clip_ratio)
        value = self.nets["critic"](obs).squeeze(-1)
        value_loss = (batch.ret - value).pow(2).mean()
        loss = policy_loss + p.value_coef * value_loss - p.entropy_coef * entropy.mean()
        if p.weight_decay:
            loss = loss + self.l2_penalty()
        self._optimize(("actor", "critic"), loss, update, max_grad_norm=p.max_grad_norm)
        ratio = torch.exp(log_prob.detach() - batch.old_log_prob)
        self.record(
            {"policy_loss": policy_loss, "value_loss": value_loss},
            entropy=entropy.detach().mean(),
            clip_fraction=((ratio - 1.0).abs() > p.clip_ratio).float().mean(),
        )

    @torch.no_grad()
    def hidden_activations(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        obs = self.normalize_obs(batch.obs)
        return {
            "actor": self.nets["actor"].net.hidden_activations(obs),
            "critic": self.nets["critic"].hidden_activations(obs),
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["obs_norm"] = self.obs_norm.state_dict()
        state["reward_norm"] = self.reward_norm.state_dict()
        state["iterations"] = self.iterations
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.obs_norm.load_state_dict(state["obs_norm"])
        self.reward_norm.load_state_dict(state["reward_norm"])
        self.iterations = state["iterations"]
