"""Data augmentation on/off, and switched on or off at a given step (Ma et al., ICLR 2024, §3 and §5).

DrQ-v2 augments every training batch with random shifts (`agent.augment`, on by default). This method sets
the augmentation state: DA is `enabled` from env step `from_step` on, and the opposite before it.
  - `{enabled: false}`                     no DA for the whole run;
  - `{enabled: false, from_step: 100000}`  DA until step 100k, then off ("DA turned off early/late");
  - `{enabled: true,  from_step: 100000}`  no DA until step 100k, then on.
The switch happens in `on_step` at `from_step`, before that step's updates. The state lives on the agent and
is checkpointed with it, so the method itself has no state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from neuroplastic.methods.base import Method, Params

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent


class DataAugmentationParams(Params):
    enabled: bool = Field(description="DA state from `from_step` on (before it, the opposite).")
    from_step: int = Field(0, ge=0, description="Env (agent) step at which DA becomes `enabled`; 0 = whole run.")


class DataAugmentation(Method):
    name = "data_augmentation"
    Params = DataAugmentationParams
    params: DataAugmentationParams
    agents: ClassVar[frozenset[str] | None] = frozenset({"drqv2"})
    # No DA from the start: acts in any run, and leaves a variant's own `from_step` (a switch) in place when a
    # smoke overlay fills unset keys with these.
    smoke_params: ClassVar[dict] = {"enabled": False, "from_step": 0}

    def on_build(self, agent: Agent) -> None:
        if not hasattr(agent, "augment"):
            raise ValueError(f"data_augmentation: agent {agent.name!r} has no data augmentation to switch")
        if getattr(agent.params, "aug_pad", 1) == 0:
            raise ValueError("data_augmentation: the agent's aug_pad is 0, so there is no shift to switch on")
        p = self.params
        agent.augment = p.enabled if p.from_step == 0 else not p.enabled

    def on_step(self, agent: Agent, step: int) -> None:
        if step == self.params.from_step:
            agent.augment = self.params.enabled

    def log_metrics(self, agent: Agent, replay, step: int) -> dict[str, float]:
        return {"da.enabled": float(agent.augment)}
