"""DQN (Mnih et al. 2015) for discrete actions, as the sparse-training study ran it (Graesser et al. 2022).

Two domains, each with the defaults of the reference code the study used (every value and its source is
listed in docs/deviations.md, "DQN hyperparameters"); a parameter left at None takes its domain's default:

Classic control: tf-agents `dqn_train_eval.py` + rigl `dqn_gym_*.gin`; Atari: Dopamine `dqn.gin` + rigl
`dqn_atari_dense.gin` and `dqn_agents.py` (google-research/rigl d39fc7d).

| parameter              | classic control      | Atari                                       |
|------------------------|----------------------|---------------------------------------------|
| network                | MLP 512-512 (ReLU)   | Nature CNN (32×8×8/4, 64×4×4/2, 64×3×3/1, "same" padding) + 512 |
| optimizer              | Adam 1e-3, ε 1e-7    | Adam 2.5e-4, ε 1e-8                         |
| batch, replay capacity | 128, 100k            | 32, 1M                                      |
| updates                | every env step       | every 4th agent step (`replay_ratio` 0.25)  |
| target network         | copy every 100 upd.  | copy every 2000 updates (8000 agent steps)  |
| TD loss                | squared error        | Huber (δ = 1)                               |
| exploration ε          | constant 0.01        | 1 → 0.01 linearly over 250k agent steps after 20k warm-up |
| evaluation ε           | 0 (greedy)           | 0.001                                       |
| reward clipping        | none                 | [−1, 1]                                     |
| weight decay           | 1e-6·Σw², hidden kernels | 0 (if set: ½λΣw², every kernel)          |
| init                   | He trunc. normal hidden, U(±0.03) out, bias −0.2 | Glorot uniform, biases 0 |

The Q-network is the role "critic" (the only network; its target is `targets["critic"]`), so every sparse
method's default roles reach it. The TD target is y = r + γ·not_done·Q̄(s', argmax_a Q(s', a)) with double-Q
(van Hasselt et al. 2016; `double_q`), else r + γ·not_done·max_a Q̄(s', a) (Dopamine's DQN). Time limits never
end bootstrapping. Exploration and evaluation draws come from the agent's own numpy generators (checkpointed);
the update has no host synchronisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from neuroplastic import envs
from neuroplastic.agents.base import Agent, AgentParams
from neuroplastic.nets import MLP, MLPSpec, NatureCNN, NatureCNNSpec, sum_of_squares
from neuroplastic.replay import Batch, PixelReplay, ReplayBuffer


class DQNParams(AgentParams):
    hidden: int = Field(512, gt=0, description="Width of the MLP's hidden layers, and of the Nature CNN's dense layer.")
    layers: int = Field(2, gt=0, description="Hidden layers of the MLP (vector observations).")
    conv_channels: list[int] = Field(
        default_factory=lambda: [32, 64, 64], min_length=3, max_length=3, description="Nature CNN conv channels."
    )
    lr: float | None = Field(None, gt=0, description="Adam learning rate (None: 1e-3 classic, 2.5e-4 Atari).")
    adam_eps: float | None = Field(None, gt=0, description="Adam ε (None: 1e-7 classic (Keras), 1e-8 Atari (TF1)).")
    batch_size: int | None = Field(None, gt=0, description="None: 128 classic, 32 Atari.")
    buffer_size: int | None = Field(None, gt=0, description="Replay capacity (None: 100k classic, 1M Atari).")
    gamma: float = Field(0.99, ge=0, le=1)
    update_period: int | None = Field(None, gt=0, description="Env steps per update (None: 1 classic, 4 Atari).")
    target_update_period: int | None = Field(
        None, gt=0, description="Updates between hard target copies (None: 100 classic, 2000 Atari)."
    )
    double_q: bool = Field(False, description="Double-Q target (online argmax, target value); Dopamine DQN: off.")
    loss: Literal["huber", "mse"] | None = Field(None, description="TD loss (None: mse classic, huber Atari).")
    epsilon_final: float | None = Field(None, ge=0, le=1, description="Final training ε (None: 0.01).")
    epsilon_decay_steps: int | None = Field(
        None, ge=0, description="Env steps of the linear 1 → ε_final decay (None: 0 = constant classic, 250k Atari)."
    )
    epsilon_warmup: int | None = Field(
        None, ge=0, description="Env steps before the decay starts (None: 0 classic, 20k Atari = min_replay_history)."
    )
    eval_epsilon: float | None = Field(None, ge=0, le=1, description="ε of evaluation (None: 0 classic, 0.001 Atari).")
    clip_rewards: bool | None = Field(
        None, description="Clip rewards to [−1, 1] in the update (None: no for classic, yes for Atari)."
    )
    weight_decay: float | None = Field(
        None,
        ge=0,
        description="L2 λ (None: 1e-6 classic as λΣw² on the hidden kernels (Keras L2); 0 Atari, where a set λ "
        "adds ½λΣw² over every kernel (rigl SparseDQNAgent, tf.nn.l2_loss)).",
    )


@dataclass(frozen=True)
class Resolved:
    lr: float
    adam_eps: float
    batch_size: int
    buffer_size: int
    update_period: int
    target_update_period: int
    loss: str
    epsilon_final: float
    epsilon_decay_steps: int
    epsilon_warmup: int
    eval_epsilon: float
    reward_clip: float | None
    weight_decay: float


# The study's values at google-research/rigl d39fc7d: classic `dqn_gym_dense_config.gin` + `dqn_train_eval.py`,
# Atari `dqn_atari_dense.gin` + Dopamine `dqn.gin`.
DOMAIN_DEFAULTS = {
    "classic": Resolved(1e-3, 1e-7, 128, 100_000, 1, 100, "mse", 0.01, 0, 0, 0.0, None, 1e-6),
    "atari": Resolved(2.5e-4, 1e-8, 32, 1_000_000, 4, 2000, "huber", 0.01, 250_000, 20_000, 0.001, 1.0, 0.0),
}


def resolve(params: DQNParams, pixels: bool) -> Resolved:
    """Every None parameter replaced by its domain's default."""
    base = DOMAIN_DEFAULTS["atari" if pixels else "classic"]
    values = {k: getattr(base, k) for k in Resolved.__dataclass_fields__}
    for key in values:
        given = getattr(params, key, None)
        if given is not None:
            values[key] = given
    if params.clip_rewards is not None:
        values["reward_clip"] = 1.0 if params.clip_rewards else None
    return Resolved(**values)


def linear_epsilon(step: int, final: float, decay_steps: int, warmup: int) -> float:
    """Dopamine's `linearly_decaying_epsilon`: 1 until `warmup`, then linearly to `final` over `decay_steps`."""
    if decay_steps <= 0:
        return final
    left = decay_steps + warmup - step
    bonus = min(max((1.0 - final) * left / decay_steps, 0.0), 1.0 - final)
    return final + bonus


def td_loss(q: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "huber":
        return F.huber_loss(q, target, delta=1.0)
    return F.mse_loss(q, target)


class DQN(Agent):
    name = "dqn"
    Params = DQNParams
    target_roles = ("critic",)
    log_names = ("critic_loss", "q_mean")
    params: DQNParams

    def __init__(self, params: DQNParams, env, device, methods, seed: int) -> None:
        super().__init__(params, env, device, methods, seed)
        if env.n_actions <= 0:
            raise ValueError("agent 'dqn' needs a discrete action space (e.g. CartPole-v1, ALE/Pong-v5)")
        self.pixels = len(env.obs_shape) == 3
        self.cfg = resolve(params, self.pixels)
        # The loop samples `params.batch_size`: hold the resolved value there.
        self.params = params.model_copy(update={"batch_size": self.cfg.batch_size})
        self.replay_ratio = 1.0 / self.cfg.update_period
        self.eval_rng = np.random.default_rng([seed, 1])
        self.nets["critic"] = self.build_net("critic")
        self._finish_build()

    @classmethod
    def config_problems(cls, cfg, params: dict) -> list[str]:
        if cfg.env in envs.MUJOCO_IDS or cfg.env.startswith("dmc"):
            return [f"agent 'dqn' needs discrete actions; env {cfg.env!r} is continuous"]
        return []

    # --- construction ---------------------------------------------------------------------------
    def net_spec(self) -> MLPSpec | NatureCNNSpec:
        p, e = self.params, self.env
        if self.pixels:
            channels, size, _ = e.obs_shape
            return NatureCNNSpec(channels, size, e.n_actions, tuple(p.conv_channels), hidden=p.hidden)
        return MLPSpec(e.obs_dim, (p.hidden,) * p.layers, e.n_actions)

    def build_net(self, role: str) -> nn.Module:
        if role != "critic":
            raise KeyError(role)
        spec = self.methods.net_spec(role, self.net_spec())
        net = NatureCNN(spec) if isinstance(spec, NatureCNNSpec) else MLP(spec)
        init_q_network(net)
        return net.to(self.device)

    def make_optimizer(self, role: str) -> torch.optim.Optimizer:
        return self.adam(role, lr=self.cfg.lr, eps=self.cfg.adam_eps)

    def make_replay(self, capacity: int, seed: int) -> ReplayBuffer | PixelReplay:
        capacity = min(capacity, self.cfg.buffer_size)
        if not self.pixels:
            return ReplayBuffer(self.env.obs_dim, 1, capacity, self.device, seed=seed)
        episodes = -(-capacity // max(1, self.env.max_episode_steps)) + 1
        return PixelReplay(
            self.env.obs_shape, 1, capacity + episodes, self.device, seed=seed, nstep=1, gamma=1.0, frame_channels=1
        )

    # --- acting ---------------------------------------------------------------------------------
    def epsilon(self, explore: bool) -> float:
        c = self.cfg
        if not explore:
            return c.eval_epsilon
        return linear_epsilon(self.env_step, c.epsilon_final, c.epsilon_decay_steps, c.epsilon_warmup)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        rng = self.rng if explore else self.eval_rng
        eps = self.epsilon(explore)
        if eps > 0 and rng.random() < eps:
            return np.int64(rng.integers(self.env.n_actions))
        dtype = torch.uint8 if self.pixels else torch.float32
        o = torch.as_tensor(np.asarray(obs), dtype=dtype, device=self.device).unsqueeze(0)
        return np.int64(int(self.nets["critic"](o).argmax(dim=1)[0]))

    # --- learning -------------------------------------------------------------------------------
    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """y = r + γ·not_done·Q̄(s', a*), a* = argmax Q̄(s', ·) (argmax Q(s', ·) with double-Q); (B, 1)."""
        c, p = self.cfg, self.params
        reward = batch.reward if c.reward_clip is None else batch.reward.clamp(-c.reward_clip, c.reward_clip)
        next_target = self.targets["critic"](batch.next_obs)
        if p.double_q:
            best = self.nets["critic"](batch.next_obs).argmax(dim=1, keepdim=True)
            next_q = next_target.gather(1, best)
        else:
            next_q = next_target.max(dim=1, keepdim=True).values
        return reward + batch.not_done * p.gamma * next_q

    def policy_update(self, update: int) -> bool:
        """Whether update number `update` ends with the hard target copy (every `target_update_period` updates):
        the host decides it, so the captured update traces one variant with the copy and one without."""
        return update % self.cfg.target_update_period == 0

    def decayed_kernels(self) -> list[torch.Tensor]:
        """Classic: the hidden layers' kernels (tf-agents `build_network` puts the L2 regulariser on the hidden
        Dense layers, not on the Q output). Atari: every kernel (rigl `SparseDQNAgent`: all non-bias variables).
        Read at each update: methods may replace modules."""
        kernels = [m.weight for m in self.nets["critic"].modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        return kernels if self.pixels else kernels[:-1]

    def l2_penalty(self) -> torch.Tensor:
        """Classic: λ·Σw² (Keras L2); Atari: ½λ·Σw² (tf.nn.l2_loss)."""
        factor = 0.5 if self.pixels else 1.0
        return factor * self.cfg.weight_decay * sum_of_squares(self.decayed_kernels())

    def learn(self, batch: Batch, update: int, policy: bool) -> None:
        """One TD step of the Q-network; `policy`: then copy it into the target network."""
        target = self.td_target(batch)
        q_all = self.nets["critic"](batch.obs)
        q = q_all.gather(1, batch.action.long().view(-1, 1))
        loss = td_loss(q, target, self.cfg.loss)
        if self.cfg.weight_decay:
            loss = loss + self.l2_penalty()
        self._optimize("critic", loss, update)
        if policy:
            with torch.no_grad():
                torch._foreach_copy_(list(self.targets["critic"].parameters()), list(self.nets["critic"].parameters()))
            self.methods.after_target_update(self)
        self.record({"critic_loss": loss}, q_mean=q.detach().mean())

    @torch.no_grad()
    def hidden_activations(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        return {"critic": self.nets["critic"].hidden_activations(batch.obs)}

    def state_dict(self):
        return {**super().state_dict(), "eval_rng": self.eval_rng.bit_generator.state}

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        self.eval_rng.bit_generator.state = state["eval_rng"]


@torch.no_grad()
def init_q_network(net: nn.Module) -> None:
    """The reference inits. MLP (tf-agents `build_network`): hidden kernels He truncated normal
    (VarianceScaling(2, fan_in)), output kernel U(±0.03) with bias −0.2, hidden biases 0. Nature CNN (rigl
    `dqn_agents.NatureDQNNetwork`, Keras layers given no initializer): every kernel Glorot uniform
    U(±√(6 / (fan_in + fan_out))), biases 0."""
    if isinstance(net, NatureCNN):
        for layer in [*net.convs, *net.head.layers]:
            nn.init.xavier_uniform_(layer.weight)
            layer.bias.zero_()
        return
    for layer in net.layers[:-1]:
        std = math.sqrt(2.0 / layer.in_features) / 0.87962566103423978
        nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
        layer.bias.zero_()
    net.layers[-1].weight.uniform_(-0.03, 0.03)
    net.layers[-1].bias.fill_(-0.2)
