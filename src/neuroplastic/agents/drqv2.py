"""DrQ-v2 (Yarats, Fergus, Lazaric, Pinto, 2021) on DMC pixels, as in `facebookresearch/drqv2`.

Networks (roles in `nets`):
  - "encoder": 4 conv 3×3 layers, 32 channels, strides 2,1,1,1, ReLU, no padding: 9×84×84 → 32×35×35 = 39200;
    input scaled to obs/255 − 0.5;
  - "actor": trunk Linear(39200→50) → LayerNorm → tanh, then the policy head MLP 50→1024→1024→|A| (ReLU),
    tanh mean; the std comes from a schedule;
  - "critic": its own trunk (same shape), then two Q heads (50+|A|)→1024→1024→1 (ReLU).
The heads are `nets.MLP`s (MaskedLinear layers) built from `MLPSpec`s that pass through `methods.net_spec`, so
NE masks, LayerNorm, CReLU, ReDo, Reset and Plasticity Injection act on them exactly as on TD3. The trunks
are plain `nn.Linear` (never masked: NE keeps the encoder and the trunk dense, the `used_in_DrQ` hint).
Init: orthogonal (gain 1 for linear layers, √2 for convs), biases 0.

Update (every update):
  1. obs and next_obs are augmented independently: random shift by an integer in [−pad, pad] per sample and
     axis with replicate padding (pad 4);
  2. critic: y = R_n + not_done·γ^n·min(Q̄1, Q̄2)(z', a'), z' = encoder(next_obs) (online encoder, no grad),
     a' = mean(z') + clip(σ·ε, ±0.3) clamped to ±(1−1e-6); loss MSE(Q1,y) + MSE(Q2,y). The one critic loss
     trains the critic *and* the encoder: `_optimize(("critic", "encoder"), loss)` runs one backward pass,
     then the hooks and optimizer step of "critic", then of "encoder" (the official order). Methods therefore
     see `net="encoder"` in `extra_loss` / `before_optimizer_step` / `after_optimizer_step`;
  3. actor on detached encoder features: −min(Q1, Q2)(z, a), a = mean(z) + clip(σ·ε, ±0.3);
  4. Polyak update of the critic target (trunk + heads; there is no target encoder), τ = 0.01.
σ = linear(std_init → std_final over std_steps) in *agent steps* (env steps of the loop; one agent step is
`action_repeat` = 2 frames); the update reads it from a device tensor, `update_std`, refreshed in place before
every update (`before_learn`). The loop gives 0.5 updates per agent step (`replay_ratio` 0.5 = DrQ-v2's
update every 2 steps) and uniform random actions for `start_steps` (DrQ-v2: 4000 seed frames = 2000 steps).
No host synchronisation in `update`: losses stay on the device until a log interval reads them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from neuroplastic.agents.base import Agent, AgentParams, ConvChain
from neuroplastic.dmc import PIXELS_PREFIX
from neuroplastic.metrics import fau
from neuroplastic.nets import MLP, ConvEncoder, ConvSpec, MLPSpec
from neuroplastic.replay import Batch, PixelReplay


class DrQV2Params(AgentParams):
    feature_dim: int = Field(50, gt=0, description="Trunk output width (humanoid: 100).")
    hidden: int = Field(1024, gt=0, description="Width of the actor and critic head MLPs.")
    conv_channels: int = Field(32, gt=0)
    lr: float = Field(1e-4, gt=0, description="Adam lr of encoder, actor and critic (humanoid: 8e-5).")
    batch_size: int = Field(256, gt=0)
    gamma: float = Field(0.99, ge=0, le=1)
    tau: float = Field(0.01, gt=0, le=1, description="Polyak rate of the critic target, every update.")
    nstep: int = Field(3, gt=0, description="n-step returns (walker tasks: 1).")
    std_init: float = Field(1.0, ge=0)
    std_final: float = Field(0.1, ge=0)
    std_steps: int = Field(500_000, gt=0, description="Agent steps of the linear std schedule (easy tasks: 100k).")
    std_clip: float = Field(0.3, ge=0, description="Clip of the policy noise in the actor and critic targets.")
    aug_pad: int = Field(4, ge=0, description="Random-shift augmentation: max shift in pixels (0 = none).")
    replay_ratio: float = Field(0.5, gt=0, description="Updates per agent step (DrQ-v2: 1 every 2 steps).")
    buffer_size: int = Field(1_000_000, gt=0, description="Replay capacity in transitions (quadruped_run: 1e5).")
    replay_storage: Literal["auto", "host", "device"] = Field(
        "auto",
        description="Where replay frames live: host RAM, the training device (GPU), or auto = the GPU when they "
        "fit in 80% of its free memory. Sampling draws the same indices either way.",
    )


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by its own integer (dy, dx) ∈ [−pad, pad]², replicating the border.

    Equivalent to DrQ-v2's replicate-pad-by-`pad` then crop at a random offset in [0, 2·pad]; implemented as a
    clamped gather, so it works on uint8 and needs no interpolation. Draws from the global torch RNG.
    """
    if pad == 0:
        return x
    b, _, h, w = x.shape
    shift = torch.randint(-pad, pad + 1, (b, 2), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + shift[:, :1]).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device)[None, :] + shift[:, 1:]).clamp(0, w - 1)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def _trunk(repr_dim: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


class DrQActor(nn.Module):
    def __init__(self, repr_dim: int, feature_dim: int, spec: MLPSpec) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.policy = MLP(spec)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The policy mean in [−1, 1]."""
        return torch.tanh(self.policy(self.trunk(features)))

    def hidden_activations(self, features: torch.Tensor) -> list[torch.Tensor]:
        return self.policy.hidden_activations(self.trunk(features))


class DrQCritic(nn.Module):
    def __init__(self, repr_dim: int, feature_dim: int, spec: MLPSpec) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.q1 = MLP(spec)
        self.q2 = MLP(spec)

    def forward(self, features: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ha = torch.cat((self.trunk(features), action), dim=-1)
        return self.q1(ha), self.q2(ha)

    def hidden_activations(self, features: torch.Tensor, action: torch.Tensor) -> list[torch.Tensor]:
        ha = torch.cat((self.trunk(features), action), dim=-1)
        return self.q1.hidden_activations(ha) + self.q2.hidden_activations(ha)


@torch.no_grad()
def drqv2_init(module: nn.Module) -> None:
    """DrQ-v2's `weight_init`: orthogonal weights (gain √2 for convs, 1 for linear layers), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.Conv2d):
            nn.init.orthogonal_(m.weight, nn.init.calculate_gain("relu"))
            if m.bias is not None:
                m.bias.zero_()


class DrQV2(Agent):
    name = "drqv2"
    Params = DrQV2Params
    target_roles = ("critic",)
    capture_outputs = ("_last", "_train_inputs", "_critic_fau")
    log_names = ("critic_loss", "actor_loss", "critic_q", "batch_reward")
    params: DrQV2Params

    def __init__(self, params: DrQV2Params, env, device, methods, seed: int) -> None:
        super().__init__(params, env, device, methods, seed)
        if len(env.obs_shape) != 3:
            raise ValueError(f"drqv2 needs pixel observations (C, H, W), got shape {env.obs_shape}; use dmc-pixels:")
        self.replay_ratio = params.replay_ratio
        # The std `learn` samples with, as of the latest update (`before_learn`): one device tensor for the whole
        # run, since a captured update reads the tensor it was traced with. It follows `env_step`, which the loop
        # sets before every step, so it needs no checkpoint.
        self.update_std = torch.tensor(self.stddev(), dtype=torch.float32, device=device)
        # Data augmentation on/off at run time (the `data_augmentation` method switches it).
        self.augment = params.aug_pad > 0
        # Official construction order: encoder, actor, critic (then the critic target as a copy).
        self.nets["encoder"] = self.build_net("encoder")
        self.nets["actor"] = self.build_net("actor")
        self.nets["critic"] = self.build_net("critic")
        self._finish_build()
        self._train_inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        # Per-update critic FAU (Adaptive RR); off by default because it costs an extra head forward pass.
        self.track_critic_fau = False
        self._critic_fau: torch.Tensor | None = None

    @classmethod
    def config_problems(cls, cfg, params: dict) -> list[str]:
        if not cfg.env.startswith(PIXELS_PREFIX):
            return [f"drqv2 learns from pixels; env {cfg.env!r} is not a {PIXELS_PREFIX}<domain>-<task> env"]
        return []

    # --- construction ---------------------------------------------------------------------------
    def conv_spec(self) -> ConvSpec:
        c, h, w = self.env.obs_shape
        if h != w:
            raise ValueError(f"drqv2 expects square images, got {h}×{w}")
        return ConvSpec(in_channels=c, image_size=h, channels=(self.params.conv_channels,) * 4)

    def net_specs(self) -> dict[str, MLPSpec]:
        p, a = self.params, self.env.act_dim
        return {
            "actor": MLPSpec(p.feature_dim, (p.hidden, p.hidden), a),
            "critic": MLPSpec(p.feature_dim + a, (p.hidden, p.hidden), 1),
        }

    def build_net(self, role: str) -> nn.Module:
        conv = self.conv_spec()
        if role == "encoder":
            net = ConvEncoder(conv)
        elif role == "actor":
            net = DrQActor(
                conv.repr_dim(), self.params.feature_dim, self.methods.net_spec(role, self.net_specs()[role])
            )
        elif role == "critic":
            net = DrQCritic(
                conv.repr_dim(), self.params.feature_dim, self.methods.net_spec(role, self.net_specs()[role])
            )
        else:
            raise KeyError(role)
        drqv2_init(net)
        return net.to(self.device)

    def make_optimizer(self, role: str) -> torch.optim.Optimizer:
        return self.adam(role, lr=self.params.lr)

    def conv_chains(self) -> list[ConvChain]:
        convs = tuple(f"convs.{i}" for i in range(len(self.nets["encoder"].convs)))
        return [ConvChain("encoder", convs, (("actor", "trunk.0"), ("critic", "trunk.0")))]

    def make_replay(self, capacity: int, seed: int) -> PixelReplay:
        # One slot per step plus one reset frame per episode, so `capacity` transitions fit.
        episodes = -(-capacity // max(1, self.env.max_episode_steps)) + 1
        slots = capacity + episodes
        frames_device = None
        storage = self.params.replay_storage
        if self.device.type == "cuda" and storage != "host":
            frame_bytes = slots * int(np.prod(self.env.obs_shape)) // (self.env.obs_shape[0] // 3)
            if storage == "device" or frame_bytes <= 0.8 * torch.cuda.mem_get_info(self.device)[0]:
                frames_device = self.device
        return PixelReplay(
            self.env.obs_shape,
            self.env.act_dim,
            slots,
            self.device,
            seed=seed,
            nstep=self.params.nstep,
            gamma=self.params.gamma,
            frames_device=frames_device,
        )

    # --- acting ---------------------------------------------------------------------------------
    def stddev(self) -> float:
        """σ at the current `env_step`. Acting and logging read it here (on the host, in double precision, at their
        own env step) rather than from `update_std`, which holds the σ of the latest update on the device."""
        p = self.params
        mix = min(max(self.env_step / p.std_steps, 0.0), 1.0)
        return (1.0 - mix) * p.std_init + mix * p.std_final

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        o = torch.as_tensor(obs, device=self.device).unsqueeze(0)
        mean = self.nets["actor"](self.nets["encoder"](o))[0].cpu().numpy()
        if explore:
            mean = mean + self.stddev() * self.rng.standard_normal(size=mean.shape)
            mean = mean.clip(-1.0 + 1e-6, 1.0 - 1e-6)
        return mean.astype(np.float32)

    def _policy_sample(self, features: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """DrQ-v2's TruncatedNormal.sample(clip): mean + clip(σ·ε), clamped with a straight-through gradient."""
        mean = self.nets["actor"](features)
        noise = (torch.randn_like(mean) * std).clamp(-self.params.std_clip, self.params.std_clip)
        x = mean + noise
        clamped = x.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
        return x - x.detach() + clamped.detach()

    def augment_pair(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Independent random shifts of obs and next_obs (each sample and each of the two gets its own draw)."""
        if not self.augment:
            return obs, next_obs
        pad = self.params.aug_pad
        return random_shift(obs, pad), random_shift(next_obs, pad)

    # --- learning -------------------------------------------------------------------------------
    def update_roles(self, policy: bool) -> tuple[str, ...]:
        return ("critic", "encoder", "actor")

    def capture_key(self) -> tuple:
        return (self.augment, self.track_critic_fau)

    def before_learn(self, update: int) -> None:
        self.update_std.fill_(self.stddev())

    def learn(self, batch: Batch, update: int, policy: bool) -> None:
        p = self.params
        encoder, critic = self.nets["encoder"], self.nets["critic"]
        std = self.update_std

        obs, next_obs = self.augment_pair(batch.obs, batch.next_obs)
        features = encoder(obs)
        with torch.no_grad():
            next_features = encoder(next_obs)
            next_action = self._policy_sample(next_features, std)
            tq1, tq2 = self.targets["critic"](next_features, next_action)
            target_q = batch.reward + batch.not_done * (p.gamma**p.nstep) * torch.min(tq1, tq2)

        self._train_inputs = (obs, features.detach(), batch.action)
        if self.track_critic_fau:
            # Ma et al. measure the critic FAU inside the critic forward of each update: same batch, same weights.
            with torch.no_grad():
                self._critic_fau = fau(critic.hidden_activations(features.detach(), batch.action))
        q1, q2 = critic(features, batch.action)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self._optimize(("critic", "encoder"), critic_loss, update)

        z = features.detach()
        action = self._policy_sample(z, std)
        aq1, aq2 = critic(z, action)
        actor_loss = -torch.min(aq1, aq2).mean()
        self._optimize("actor", actor_loss, update)

        self.polyak("critic", p.tau)
        self.methods.after_target_update(self)

        self.record(
            {"critic_loss": critic_loss, "actor_loss": actor_loss},
            critic_q=q1.detach().mean(),
            batch_reward=batch.reward.mean(),
        )

    def log_values(self) -> dict[str, torch.Tensor]:
        return {**super().log_values(), "actor_std": torch.tensor(self.stddev(), device=self.device)}

    @torch.no_grad()
    def hidden_activations(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        """Per module, on the un-augmented batch: encoder conv maps, actor head, critic heads (Q1 then Q2).

        The trunks (LayerNorm-tanh) are excluded, as in Ma et al.'s FAU."""
        encoder = self.nets["encoder"]
        maps = encoder.hidden_activations(batch.obs)
        features = maps[-1].flatten(1)
        return {
            "encoder": maps,
            "actor": self.nets["actor"].hidden_activations(features),
            "critic": self.nets["critic"].hidden_activations(features, batch.action),
        }

    @torch.no_grad()
    def training_activations(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        """Activations on the latest update's augmented batch with the current weights (Ma et al.'s FAU is
        measured on the training batch); falls back to `hidden_activations` before the first update."""
        if self._train_inputs is None:
            return self.hidden_activations(batch)
        obs, features, action = self._train_inputs
        return {
            "encoder": self.nets["encoder"].hidden_activations(obs),
            "actor": self.nets["actor"].hidden_activations(features),
            "critic": self.nets["critic"].hidden_activations(features, action),
        }

    def critic_fau(self) -> torch.Tensor | None:
        """Critic FAU of the latest update (augmented batch, weights before its critic step), a device scalar;
        recorded only while `track_critic_fau` is on (Adaptive RR turns it on)."""
        return self._critic_fau

    def state_dict(self):
        return {**super().state_dict(), "augment": self.augment}

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        self.augment = state["augment"]
