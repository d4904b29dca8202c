"""SAC (Haarnoja et al., 2018) as used by the Primacy-Bias study (jaxrl) and the sparse-training study (tf-agents).

Actor s→256→256→2|A| (ReLU) giving the mean and log-std of a Gaussian, log-std clipped to [−10, 2], actions
max_action·tanh(u) with the change-of-variables correction; twin critics (s‖a)→256→256→1; Adam 3e-4 for
actor, critics and temperature; batch 256, γ 0.99, Polyak τ 0.005 on the critics every update (no actor
target); learned temperature α = exp(log α), initial α 1.0, target entropy −|A|/2 (tf-agents' default, which the
sparse-training study's SAC uses, and jaxrl's, which the Primacy-Bias code uses; the SAC paper's −|A| is
`target_entropy: -|A|`); soft backup
y = r + γ·not_done·(min(Q̄1, Q̄2)(s', a') − α·log π(a'|s')).

Update order per gradient step (jaxrl's): critic, Polyak target, actor (on the new critic), temperature (on
the actor's fresh log-probabilities). Each of the three goes through `_optimize`, so method hooks see the
roles "critic", "actor" and "temperature". The temperature is a network role without an MLP (`nets
["temperature"]` holds the single parameter log α): MLP-based methods skip it, Reset re-creates it (as the
Primacy-Bias SAC reset does), and a method may veto its step like any other.

Log-probabilities are taken in the squashed space [−1, 1]^|A| (before scaling by max_action), as in jaxrl and
SB3, so the target entropy does not depend on the action bounds. Sampling noise uses the global torch
RNG on the training device (checkpointed by the loop). The update has no host synchronisation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from neuroplastic.agents.base import AgentParams, TwinCriticAgent
from neuroplastic.nets import MLP, MLPSpec, TwinQ, sum_of_squares
from neuroplastic.replay import Batch


class SACParams(AgentParams):
    hidden: int = Field(256, gt=0)
    lr: float = Field(3e-4, gt=0, description="Adam learning rate of actor and critics.")
    temperature_lr: float = Field(3e-4, gt=0, description="Adam learning rate of log α.")
    batch_size: int = Field(256, gt=0)
    gamma: float = Field(0.99, ge=0, le=1)
    tau: float = Field(0.005, gt=0, le=1)
    init_temperature: float = Field(1.0, gt=0, description="Initial α (jaxrl/Primacy Bias: 1.0).")
    target_entropy: float | None = Field(
        None, description="Target entropy of the temperature loss; None = −|A|/2 (tf-agents, jaxrl), SAC paper: −|A|."
    )
    learn_temperature: bool = Field(True, description="False keeps α at `init_temperature`.")
    log_std_min: float = Field(-10.0)
    log_std_max: float = Field(2.0)
    reward_scale: float = Field(1.0, gt=0, description="Rewards are multiplied by this (sparse-training gin: 0.1).")
    buffer_size: int = Field(1_000_000, gt=0)
    weight_decay: float = Field(
        0.0,
        ge=0,
        description="λ of λ·Σ‖W‖² on every actor and critic kernel, each in its own loss (Keras L2 of the "
        "sparse-training study's SAC networks; its dense runs: 1e-4).",
    )


class Temperature(nn.Module):
    """α = exp(log α); the parameter is log α so α stays positive."""

    def __init__(self, init_temperature: float) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_temperature), dtype=torch.float32))

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


class TanhGaussianActor(nn.Module):
    """MLP(s) → (mean, log std); actions max_action·tanh(u), u ~ N(mean, std)."""

    def __init__(self, spec: MLPSpec, max_action: float, log_std_min: float, log_std_max: float) -> None:
        super().__init__()
        self.net = MLP(spec)
        self.max_action = max_action
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic (evaluation) action: max_action·tanh(mean)."""
        mean, _ = self.dist_params(obs)
        return self.max_action * torch.tanh(mean)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action and its log-probability (in the squashed space), shape (B, 1)."""
        mean, log_std = self.dist_params(obs)
        u = mean + log_std.exp() * torch.randn_like(mean)
        # log N(u; mean, std) − Σ log(1 − tanh(u)²), the latter in the stable form 2(log 2 − u − softplus(−2u)).
        gauss = -0.5 * ((u - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        correction = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        log_prob = (gauss - correction).sum(-1, keepdim=True)
        return self.max_action * torch.tanh(u), log_prob


class SAC(TwinCriticAgent):
    name = "sac"
    Params = SACParams
    target_roles = ("critic",)
    log_names = ("critic_loss", "actor_loss", "temperature_loss", "temperature", "entropy")
    params: SACParams

    def __init__(self, params: SACParams, env, device, methods, seed: int) -> None:
        super().__init__(params, env, device, methods, seed)
        self.nets["actor"] = self.build_net("actor")
        self.nets["critic"] = self.build_net("critic")
        self.nets["temperature"] = self.build_net("temperature")
        self._finish_build()
        self.target_entropy = float(-env.act_dim / 2 if params.target_entropy is None else params.target_entropy)

    def net_specs(self) -> dict[str, MLPSpec]:
        p, e = self.params, self.env
        return {
            "actor": MLPSpec(e.obs_dim, (p.hidden, p.hidden), 2 * e.act_dim),
            "critic": MLPSpec(e.obs_dim + e.act_dim, (p.hidden, p.hidden), 1),
        }

    def build_net(self, role: str) -> nn.Module:
        p = self.params
        if role == "temperature":
            return Temperature(p.init_temperature).to(self.device)
        spec = self.methods.net_spec(role, self.net_specs()[role])
        if role == "actor":
            return TanhGaussianActor(spec, self.env.max_action, p.log_std_min, p.log_std_max).to(self.device)
        if role == "critic":
            return TwinQ(spec).to(self.device)
        raise KeyError(role)

    def make_optimizer(self, role: str) -> torch.optim.Optimizer:
        lr = self.params.temperature_lr if role == "temperature" else self.params.lr
        return self.adam(role, lr=lr)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        actor = self.nets["actor"]
        a = actor.sample(o)[0] if explore else actor(o)
        return a[0].cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """Soft backup r·scale + γ·not_done·(min(Q̄1, Q̄2)(s', a') − α log π(a'|s')), a' ~ π (draws noise)."""
        p = self.params
        alpha = self.nets["temperature"]()
        next_action, next_log_prob = self.nets["actor"].sample(batch.next_obs)
        tq1, tq2 = self.targets["critic"](batch.next_obs, next_action)
        soft_q = torch.min(tq1, tq2) - alpha * next_log_prob
        return p.reward_scale * batch.reward + batch.not_done * p.gamma * soft_q

    def update_roles(self, policy: bool) -> tuple[str, ...]:
        return ("critic", "actor", "temperature") if self.params.learn_temperature else ("critic", "actor")

    def l2_penalty(self, role: str) -> torch.Tensor:
        """λ·Σ‖W‖² over the role's linear kernels (biases excluded), read at each update since methods may
        replace modules."""
        kernels = [m.weight for m in self.nets[role].modules() if isinstance(m, nn.Linear)]
        return self.params.weight_decay * sum_of_squares(kernels)

    def learn(self, batch: Batch, update: int, policy: bool) -> None:
        p = self.params
        actor, critic, temperature = self.nets["actor"], self.nets["critic"], self.nets["temperature"]

        with torch.no_grad():
            alpha = temperature()
        target_q = self.td_target(batch)

        q1, q2 = critic(batch.obs, batch.action)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        if p.weight_decay:
            critic_loss = critic_loss + self.l2_penalty("critic")
        self._optimize("critic", critic_loss, update)
        self.polyak("critic", p.tau)
        self.methods.after_target_update(self)

        action, log_prob = actor.sample(batch.obs)
        q1_pi, q2_pi = critic(batch.obs, action)
        actor_loss = (alpha * log_prob - torch.min(q1_pi, q2_pi)).mean()
        if p.weight_decay:
            actor_loss = actor_loss + self.l2_penalty("actor")
        self._optimize("actor", actor_loss, update)

        entropy = -log_prob.detach().mean()
        temperature_loss = temperature() * (entropy - self.target_entropy)
        if p.learn_temperature:
            self._optimize("temperature", temperature_loss, update)

        self.record(
            {"critic_loss": critic_loss, "actor_loss": actor_loss, "temperature_loss": temperature_loss},
            temperature=alpha,
            entropy=entropy,
        )
