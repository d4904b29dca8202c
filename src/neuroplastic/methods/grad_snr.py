"""`grad_snr`: a measurement-only method that logs the gradient signal-to-noise ratio of the critic loss
(Graesser et al. 2022, who found RigL ≈ SET because of a low SNR in deep RL).

At every log interval it samples a minibatch of `batch_size` transitions with its own generator, computes the
agent's TD targets y (`agent.td_target`) inside a forked RNG, takes the per-sample gradients of the critic loss
Σ_heads (Q_head(s_i, a_i) − y_i)² with torch.func, and logs `grad_snr.critic` = the mean over parameter entries of
|mean_i g_ij| / (std_i g_ij + 1e-10) (see `metrics.per_sample_gradient_snr`). Nothing runs in the update path,
and neither the global RNG streams nor the replay's sampler are touched, so a run with `grad_snr` trains
bit-identically to one without. Compose it with any method: `method: [{name: rigl}, {name: grad_snr}]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from neuroplastic import metrics
from neuroplastic.methods.base import Method, Params, RunContext
from neuroplastic.nets import masked_linears

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Replay


class GradSNRParams(Params):
    batch_size: int = Field(256, gt=1, description="Transitions in the measurement minibatch.")
    entries: Literal["active", "all"] = Field(
        "active", description="Average over active entries only, or over all with masked entries at SNR 0 (study)."
    )
    chunk: int = Field(64, gt=0, description="Samples per vmap call (memory: chunk × #parameters).")


def critic_sample_loss(y: torch.Tensor):
    """The per-sample critic loss given the targets: Σ over the critic's outputs (heads) of (Q − y)²."""

    def loss(forward, obs: torch.Tensor, action: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = forward(obs, action)
        heads = out if isinstance(out, tuple) else (out,)
        return sum(((q - target) ** 2).sum() for q in heads)

    return loss


class GradSNR(Method):
    name: ClassVar[str] = "grad_snr"
    Params: ClassVar[type[GradSNRParams]] = GradSNRParams
    params: GradSNRParams
    # Needs a critic on (obs, action) with a `td_target`; DrQ-v2's critic reads encoder features, not pixels.
    agents: ClassVar[frozenset[str] | None] = frozenset({"td3", "sac"})

    def __init__(self, params: GradSNRParams, ctx: RunContext) -> None:
        super().__init__(params, ctx)
        seed = np.random.SeedSequence([ctx.seed, ctx.method_index, 0x534E52]).generate_state(1)[0]
        self.generator = torch.Generator(device=ctx.device)
        self.generator.manual_seed(int(seed))

    def on_build(self, agent: Agent) -> None:
        if "critic" not in agent.nets or not agent.exposes_td_target:
            raise ValueError(f"method grad_snr: agent {agent.name!r} has no critic with a `td_target`")

    def log_metrics(self, agent: Agent, replay: Replay, step: int) -> dict[str, float]:
        if len(replay) == 0:
            return {}
        return {"grad_snr.critic": float(self.measure(agent, replay))}

    def measure(self, agent: Agent, replay: Replay) -> torch.Tensor:
        batch = replay.sample(self.params.batch_size, generator=self.generator)
        device = self.ctx.device
        # The targets may draw noise (TD3's smoothing, SAC's next actions): keep the training streams untouched.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            y = agent.td_target(batch)
        critic = agent.nets["critic"]
        snr = metrics.per_sample_gradient_snr(
            critic, critic_sample_loss(y), (batch.obs, batch.action, y), chunk=self.params.chunk
        )
        masks = {f"{name}.weight": m.mask for name, m in masked_linears(critic) if m.mask is not None}
        return metrics.mean_snr(snr, masks, self.params.entries)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
