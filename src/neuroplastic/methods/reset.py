"""Reset (Nikishin et al., ICML 2022, "The Primacy Bias in Deep RL").

Every `interval` environment steps, re-initialise the agent's networks (all of each network, or only the last
`last_layers` linear layers of every MLP in it), keep the replay buffer, copy the re-initialised entries into
the target networks (so targets equal the new online weights), and — when `reset_optimizer` — drop the
optimizer state (Adam moments and step count) of exactly the re-initialised parameters.

Fresh weights come from the agent's own `build_net` under a seed derived from (run seed, method index, reset
number, role), drawn inside `fork_rng`: the global torch RNG stream is untouched, so the run equals the plain
agent until the first reset and a resumed run draws the same weights. The reset number is `step // interval`,
so the method needs no state of its own. Roles without an MLP (SAC's temperature) are always reset in full,
as the Primacy-Bias SAC reset re-creates the temperature too. The update counter (TD3's policy-delay parity)
is not reset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field

from neuroplastic.methods._common import Nets, copy_entries, fresh_net, select_nets
from neuroplastic.methods._common import seed_for as _seed_for
from neuroplastic.methods.base import Method, Params
from neuroplastic.nets import mlps

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent


class ResetParams(Params):
    interval: int = Field(200_000, gt=0, description="Env steps between resets (Primacy Bias SAC: 2e5).")
    nets: Nets = Field(None, description="Networks to reset (e.g. [actor, critic]); None = every network of the agent.")
    last_layers: int | None = Field(
        None, gt=0, description="Reset only the last k linear layers (and their norms) of each MLP; None = all."
    )
    reset_optimizer: bool = Field(True, description="Drop the optimizer state of the re-initialised parameters.")
    max_resets: int | None = Field(None, gt=0, description="Stop after this many resets (None = no limit).")


class Reset(Method):
    name = "reset"
    # Resetting the optimizer drops Adam's state; the next update makes new state tensors.
    capture = "rebuild"
    smoke_params: ClassVar[dict[str, Any]] = {"interval": 700}
    Params = ResetParams
    params: ResetParams

    def on_build(self, agent: Agent) -> None:
        select_nets(self.params.nets, agent, self.name)
        if self.params.last_layers is not None:
            for role in self.roles(agent):
                for name, mlp in mlps(agent.nets[role]):
                    if self.params.last_layers > len(mlp.layers):
                        raise ValueError(
                            f"reset.last_layers={self.params.last_layers} exceeds the {len(mlp.layers)} linear layers "
                            f"of {role}.{name}"
                        )

    def roles(self, agent: Agent) -> list[str]:
        return select_nets(self.params.nets, agent, self.name)

    def on_step(self, agent: Agent, step: int) -> None:
        p = self.params
        if step % p.interval != 0 or step >= self.ctx.steps:
            return
        number = step // p.interval
        if p.max_resets is not None and number > p.max_resets:
            return
        self.reset(agent, number)

    def _selector(self, agent: Agent, role: str):
        k = self.params.last_layers
        net = agent.nets[role]
        if k is None or not mlps(net):
            return None
        prefixes = []
        for name, mlp in mlps(net):
            base = f"{name}." if name else ""
            n_linear = len(mlp.layers)
            for i in range(n_linear - k, n_linear):
                prefixes.append(f"{base}layers.{i}.")
                if i < len(mlp.norms):
                    prefixes.append(f"{base}norms.{i}.")
        prefixes = tuple(prefixes)
        return lambda entry: entry.startswith(prefixes)

    @torch.no_grad()
    def reset(self, agent: Agent, number: int) -> None:
        for role in self.roles(agent):
            online = agent.nets[role]
            fresh = fresh_net(agent, role, _seed_for(self.ctx, "reset", number, role))
            keep = self._selector(agent, role)
            copied = set(copy_entries(online, fresh, keep))
            if role in agent.targets:
                copy_entries(agent.targets[role], online, lambda entry, c=copied: entry in c)
            if self.params.reset_optimizer and role in agent.optimizers:
                opt = agent.optimizers[role]
                for name, param in online.named_parameters():
                    if name in copied:
                        opt.state.pop(param, None)
