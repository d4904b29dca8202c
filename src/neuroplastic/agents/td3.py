"""TD3 (Fujimoto, van Hoof, Meger, 2018), as in the author code (sfujim/TD3, current defaults).

Actor s→256→256→|A| (ReLU, max_action·tanh); twin critics (s‖a)→256→256→1; Adam 3e-4 for both; batch 256,
γ 0.99, Polyak τ 0.005; target-policy noise N(0, 0.2·max_action) clipped to ±0.5·max_action; the actor and
both targets are updated every 2nd critic update; exploration noise N(0, 0.1·max_action).
`critic: ne` selects the NE paper's critic (3 hidden layers per head, LayerNorm on the third's pre-activation).
`hidden` is one width for every hidden layer, or a list of per-layer widths shared by actor and critic (the TD3
paper's 400-300 networks, the `td3_paper` preset in presets.py).

The update has no host synchronisation: losses stay on the device until a log interval reads them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator

from neuroplastic.agents.base import AgentParams, TwinCriticAgent
from neuroplastic.nets import Actor, MLPSpec, TwinQ
from neuroplastic.replay import Batch


class TD3Params(AgentParams):
    critic: Literal["td3", "ne"] = Field("td3", description="`td3`: 2×hidden; `ne`: 3×hidden, LN on the 3rd.")
    hidden: PositiveInt | list[PositiveInt] = Field(
        256, description="One width for every hidden layer, or per-layer widths, e.g. [400, 300] (the TD3 paper)."
    )
    lr: float = Field(3e-4, gt=0)
    batch_size: int = Field(256, gt=0)
    gamma: float = Field(0.99, ge=0, le=1)
    tau: float = Field(0.005, gt=0, le=1)
    policy_delay: int = Field(2, gt=0)
    policy_noise: float = Field(0.2, ge=0)
    noise_clip: float = Field(0.5, ge=0)
    expl_noise: float = Field(0.1, ge=0)
    buffer_size: int = Field(1_000_000, gt=0)

    @model_validator(mode="after")
    def _widths_fit_the_critic(self) -> TD3Params:
        if isinstance(self.hidden, list):
            need = 3 if self.critic == "ne" else 1
            if len(self.hidden) < need:
                raise ValueError(f"hidden: critic {self.critic!r} needs at least {need} widths, got {self.hidden}")
        return self

    def widths(self, role: str) -> tuple[int, ...]:
        """Hidden widths of `role`: an int is 2 layers (the NE critic: 3), a list is those layers."""
        if isinstance(self.hidden, list):
            return tuple(self.hidden)
        return (self.hidden,) * (3 if role == "critic" and self.critic == "ne" else 2)


class TD3(TwinCriticAgent):
    name = "td3"
    Params = TD3Params
    target_roles = ("actor", "critic")
    log_names = ("critic_loss", "actor_loss")
    params: TD3Params

    def __init__(self, params: TD3Params, env, device, methods, seed: int) -> None:
        super().__init__(params, env, device, methods, seed)
        # Actor before critic: the author code's construction order, hence its RNG consumption.
        self.nets["actor"] = self.build_net("actor")
        self.nets["critic"] = self.build_net("critic")
        self._finish_build()

    def net_specs(self) -> dict[str, MLPSpec]:
        p, e = self.params, self.env
        return {
            "actor": MLPSpec(e.obs_dim, p.widths("actor"), e.act_dim),
            "critic": MLPSpec(
                e.obs_dim + e.act_dim,
                p.widths("critic"),
                1,
                layernorm=frozenset({2}) if p.critic == "ne" else frozenset(),
            ),
        }

    def build_net(self, role: str):
        spec = self.methods.net_spec(role, self.net_specs()[role])
        if role == "actor":
            return Actor(spec, self.env.max_action).to(self.device)
        if role == "critic":
            return TwinQ(spec).to(self.device)
        raise KeyError(role)

    def make_optimizer(self, role: str) -> torch.optim.Optimizer:
        return self.adam(role, lr=self.params.lr)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        a = self.nets["actor"](o)[0].cpu().numpy()
        if explore:
            m = self.env.max_action
            a = a + self.rng.normal(0.0, m * self.params.expl_noise, size=a.shape)
            a = a.clip(-m, m)
        return a.astype(np.float32)

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """Clipped double-Q target with target-policy smoothing (draws the smoothing noise)."""
        p, m = self.params, self.env.max_action
        noise = (torch.randn_like(batch.action) * (p.policy_noise * m)).clamp(-p.noise_clip * m, p.noise_clip * m)
        next_action = (self.targets["actor"](batch.next_obs) + noise).clamp(-m, m)
        tq1, tq2 = self.targets["critic"](batch.next_obs, next_action)
        return batch.reward + batch.not_done * p.gamma * torch.min(tq1, tq2)

    def policy_update(self, update: int) -> bool:
        return update % self.params.policy_delay == 0

    def update_roles(self, policy: bool) -> tuple[str, ...]:
        return ("critic", "actor") if policy else ("critic",)

    def learn(self, batch: Batch, update: int, policy: bool) -> None:
        p = self.params
        actor, critic = self.nets["actor"], self.nets["critic"]

        target_q = self.td_target(batch)
        q1, q2 = critic(batch.obs, batch.action)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self._optimize("critic", critic_loss, update)
        self.record({"critic_loss": critic_loss})

        if policy:
            actor_loss = -critic.q1_only(batch.obs, actor(batch.obs)).mean()
            self._optimize("actor", actor_loss, update)
            self.record({"actor_loss": actor_loss})
            self.polyak("critic", p.tau)
            self.polyak("actor", p.tau)
            self.methods.after_target_update(self)
