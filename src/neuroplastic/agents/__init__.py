"""Agent registry: config name → `Agent` subclass (with its `Params` model)."""

from __future__ import annotations

from neuroplastic.agents.base import Agent
from neuroplastic.agents.dqn import DQN
from neuroplastic.agents.drqv2 import DrQV2
from neuroplastic.agents.ppo import PPO
from neuroplastic.agents.sac import SAC
from neuroplastic.agents.td3 import TD3

AGENTS: dict[str, type[Agent]] = {"td3": TD3, "sac": SAC, "drqv2": DrQV2, "ppo": PPO, "dqn": DQN}

__all__ = ["AGENTS", "Agent"]
