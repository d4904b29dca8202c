"""What every agent offers to the loop and to methods."""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from neuroplastic import capture
from neuroplastic.replay import ReplayBuffer

if TYPE_CHECKING:
    from neuroplastic.config import RunConfig
    from neuroplastic.envs import EnvSpec
    from neuroplastic.methods.base import MethodStack
    from neuroplastic.replay import Batch, Replay


@dataclass(frozen=True)
class ConvChain:
    """A conv stack whose channels methods may treat as units (ReDo recycles dormant conv channels).

    `convs` are module names inside `agents.nets[role]`, in order: output channel i of conv k feeds input
    channel i of conv k+1. `consumers` are (role, module name) of the linear layers that read the last conv's
    output flattened channel-major, (C, H, W) → C·H·W columns (DrQ-v2: the actor and critic trunks).
    `hidden_activations(batch)[role]` lists the post-ReLU maps of `convs`, in order.
    """

    role: str
    convs: tuple[str, ...]
    consumers: tuple[tuple[str, str], ...]


class AgentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Agent:
    """Online networks in `nets`, their Polyak targets in `targets`, one optimizer per network in `optimizers`.

    Subclasses build `nets` in `build_nets`, then call `self._finish_build()`, which lets methods edit the
    networks (`on_build`) and only then copies targets and creates optimizers.

    Training scalars: the update hands its latest losses and values to `record`; they stay on the device
    (no host sync) until a log interval reads `log_values()`, and a non-finite loss sets the `nonfinite()`
    flag for good. Both are part of `state_dict`.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = AgentParams
    # Network roles that get a Polyak-averaged target copy.
    target_roles: ClassVar[tuple[str, ...]] = ()
    # Names of the scalars `record` keeps (the keys of `log_values`, in this order); 0 until first recorded.
    log_names: ClassVar[tuple[str, ...]] = ()
    # Gradient updates per env step once training starts; methods (Adaptive RR) may change it at run time.
    replay_ratio: float = 1.0
    # Env steps taken so far; the loop sets it before acting at step t (schedules in env steps read it).
    env_step: int = 0
    # On-policy agents (PPO) learn from their own rollout store instead of replay: the loop asks them for the
    # minibatches of each full rollout (`rollout_batches`) and the replay-ratio credit does not apply.
    on_policy: ClassVar[bool] = False
    # Attributes `learn` assigns that others read after it (latest losses, the training batch as seen): a
    # CUDA-graph replay re-points them at the graph's static outputs (neuroplastic/capture.py).
    capture_outputs: ClassVar[tuple[str, ...]] = ("_last",)

    nets: dict[str, nn.Module]
    targets: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, params: Any, env: EnvSpec, device: torch.device, methods: MethodStack, seed: int) -> None:
        self.params = params
        self.env = env
        self.device = device
        self.methods = methods
        self.updates = 0
        self.rng = np.random.default_rng(seed)
        self.nets = {}
        self.targets = {}
        self.optimizers = {}
        zero = torch.zeros((), device=device)
        self._last: dict[str, torch.Tensor] = dict.fromkeys(self.log_names, zero)
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=device)

    @classmethod
    def config_problems(cls, cfg: RunConfig, params: dict) -> list[str]:
        """Problems of a resolved config that only this agent can see (empty = fine)."""
        return []

    # --- construction ---------------------------------------------------------------------------
    def make_replay(self, capacity: int, seed: int) -> Replay:
        """The replay buffer this agent learns from (pixel agents store frames instead)."""
        return ReplayBuffer(self.env.obs_dim, self.env.act_dim, capacity, self.device, seed=seed)

    def build_net(self, role: str) -> nn.Module:
        """A freshly initialised network for `role` (also used by Reset)."""
        raise NotImplementedError

    def make_optimizer(self, role: str) -> torch.optim.Optimizer:
        raise NotImplementedError

    def adam(self, role: str, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
        """Adam over `nets[role]`, with torch's fused kernel on CPU and CUDA.

        Why fused: the default CPU Adam takes √v with MKL's vector sqrt, whose special-value path makes exact
        zeros 4–6× slower than other inputs. Masked weights of a sparse network have v = 0 exactly, so NE and
        the sparse methods paid ~6% per update for it (benchmarks/throughput.py, NE code preset at Δ=10⁴); the
        fused kernel has no such path and is also ~7% faster on a dense TD3. Same update rule: runs stay
        bit-identical to each other, but differ at rounding level from runs of the single-tensor kernel.
        """
        fused = True if self.device.type in ("cpu", "cuda") else None
        return torch.optim.Adam(self.nets[role].parameters(), lr=lr, eps=eps, fused=fused)

    def planned_updates(self, train_steps: int, ratio: float) -> int:
        """Gradient updates in `train_steps` env steps after `start_steps` at replay ratio `ratio`:
        ⌊train_steps · ratio⌋, at least 1 (`methods.base.updates_in_run` sizes every update-counted schedule
        with it). On-policy agents override it."""
        return max(1, math.floor(train_steps * ratio + 1e-9))

    def rollout_batches(self, store: Any) -> Any:
        """On-policy agents: the minibatches to update on after an env step (none until the rollout is full)."""
        raise NotImplementedError(f"agent {self.name!r} is off-policy")

    def conv_chains(self) -> list[ConvChain]:
        """The agent's conv stacks (pixel agents); none for MLP-only agents."""
        return []

    def _finish_build(self) -> None:
        self.methods.on_build(self)
        for role in self.target_roles:
            self.targets[role] = self.make_target(role)
        for role in self.nets:
            self.optimizers[role] = self.make_optimizer(role)

    def make_target(self, role: str) -> nn.Module:
        target = copy.deepcopy(self.nets[role])
        target.requires_grad_(False)
        return target

    # --- acting and learning --------------------------------------------------------------------
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        raise NotImplementedError

    def update(self, batch: Batch) -> None:
        """One gradient update, eagerly: its host side (`begin_update`), then `learn`."""
        update, policy, _ = self.begin_update()
        self.learn(batch, update, policy)

    def begin_update(self) -> tuple[int, bool, tuple[Hashable, ...]]:
        """The host side of the next update, however it then runs (eagerly or captured, capture.py): count it,
        decide whether it is a policy update, call every method's `before_update` with the optimizer roles it
        steps, then the agent's own `before_learn`. Returns (update number, policy, what each method's
        `before_update` returned)."""
        self.updates += 1
        policy = self.policy_update(self.updates)
        method_keys = self.methods.before_update(self, self.updates, self.update_roles(policy))
        # The agent's own host work comes last, so it sees whatever the methods changed for this update.
        self.before_learn(self.updates)
        return self.updates, policy, method_keys

    def before_learn(self, update: int) -> None:
        """The agent's host work for update number `update`, before `learn` runs it, eagerly or captured alike:
        the one place for per-update host values `learn` reads (DrQ-v2's std schedule in env steps).

        It writes each value in place (`fill_`, `copy_`; no host sync) into a device tensor the agent owns for the
        whole run, and `learn` reads that tensor: a Python number would make a compiled update guard on it and
        recompile, and a CUDA graph keeps reading the tensors it was captured with, so a new tensor would go
        unseen. Values `learn` branches on belong in `capture_key()` instead. Default: nothing."""

    def learn(self, batch: Batch, update: int, policy: bool) -> None:
        """The tensor work of update number `update`; `policy`: the actor (and targets) update too (DQN: the
        hard target copy).

        Branches only on `policy` and on `capture_key()`, never on other Python state that changes between
        updates, so the captured update (capture.py) can trace it once per `policy` value; host values it reads
        come through device tensors that `before_learn` refreshes.
        """
        raise NotImplementedError

    def policy_update(self, update: int) -> bool:
        """Whether update number `update` updates the actor too (TD3 delays it; DQN: whether its periodic target
        copy is due; others update it every time)."""
        return True

    def update_roles(self, policy: bool) -> tuple[str, ...]:
        """The optimizer roles an update steps, in order (method clocks that count optimizer calls read it)."""
        return tuple(self.optimizers)

    def capture_key(self) -> tuple:
        """Host values `learn` branches on besides `policy` (a captured update is rebuilt when they change); values
        it only computes with are device tensors refreshed by `before_learn`."""
        return ()

    @property
    def exposes_td_target(self) -> bool:
        """Whether this agent implements `td_target` (metrics that need the critic's targets check it)."""
        return type(self).td_target is not Agent.td_target

    def td_target(self, batch: Batch) -> torch.Tensor:
        """The critic's regression target y, shape (B, 1), without gradient: the critic loss of sample i is
        Σ_heads (Q_head(s_i, a_i) − y_i)² averaged over the batch. The update uses it too; callers outside the
        update (metrics such as the gradient SNR) must fork the global RNG, since targets may draw noise."""
        raise NotImplementedError(f"agent {self.name!r} does not expose its TD target")

    def record(self, losses: dict[str, torch.Tensor], **values: torch.Tensor) -> None:
        """Keep the latest `losses` (detached) and `values` for `log_values`; a non-finite loss flags the run.

        Every key must be one of `log_names`. No host synchronisation: the flag is a device tensor."""
        for key, loss in losses.items():
            self._last[key] = loss.detach()
        self._last.update(values)
        finite = torch.isfinite(torch.stack([self._last[key] for key in losses]))
        self._nonfinite |= ~finite.all()

    def log_values(self) -> dict[str, torch.Tensor]:
        """Latest scalar training values as device tensors (read only at log intervals)."""
        return dict(self._last)

    def hidden_activations(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        """Post-activation outputs of every hidden layer, grouped by network (for plasticity metrics).

        Contract (ReDo relies on it): the list for role `r` holds the hidden layers of every MLP in
        `nets.mlps(self.nets[r])`, MLP after MLP in that order, each MLP's layers first to last.
        """
        raise NotImplementedError

    def training_activations(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        """Hidden activations on the latest training batch as the update saw it (for per-update statistics
        such as Adaptive RR's critic FAU). Agents that transform the batch (DrQ-v2 augments it) override this;
        by default it is `hidden_activations(batch)`."""
        return self.hidden_activations(batch)

    def nonfinite(self) -> torch.Tensor:
        """A bool tensor: has any loss been non-finite since the start (checked at log intervals)."""
        return self._nonfinite

    def _optimize(
        self,
        role: str | tuple[str, ...],
        loss: torch.Tensor,
        update: int | None = None,
        max_grad_norm: float | None = None,
    ) -> None:
        """Backward and step, with the method hooks around each optimizer step.

        `role` may name several networks trained by one loss (DrQ-v2's critic loss also trains the encoder):
        every role's `extra_loss` is added, one backward pass fills all gradients, then each role in order gets
        `before_optimizer_step` → its optimizer step → `after_optimizer_step`. `max_grad_norm` clips the global
        norm of all the roles' gradients together before the hooks (PPO).
        """
        roles = (role,) if isinstance(role, str) else tuple(role)
        update = self.updates if update is None else update
        for r in roles:
            extra = self.methods.extra_loss(self, r)
            if extra is not None:
                loss = loss + extra
        for r in roles:
            capture.zero_grad(self, r)
        loss.backward()
        if max_grad_norm is not None:
            params = [p for r in roles for p in self.nets[r].parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=True)
        for r in roles:
            if self.methods.before_optimizer_step(self, r, update):
                capture.optimizer_step(self, r)
            self.methods.after_optimizer_step(self, r, update)

    @torch.no_grad()
    def polyak(self, role: str, tau: float) -> None:
        online = [p for p in self.nets[role].parameters()]
        target = [p for p in self.targets[role].parameters()]
        torch._foreach_lerp_(target, online, tau)

    # --- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "targets": {k: v.state_dict() for k, v in self.targets.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "updates": self.updates,
            "replay_ratio": self.replay_ratio,
            "rng": self.rng.bit_generator.state,
            "last": {k: v.cpu() for k, v in self._last.items()},
            "nonfinite": self._nonfinite.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state["nets"].items():
            _load_module(self.nets[k], v)
        for k, v in state["targets"].items():
            _load_module(self.targets[k], v)
        for k, v in state["optimizers"].items():
            self.optimizers[k].load_state_dict(v)
        self.updates = state["updates"]
        self.replay_ratio = state["replay_ratio"]
        self.rng.bit_generator.state = state["rng"]
        self._last = {k: v.to(self.device) for k, v in state["last"].items()}
        self._nonfinite = state["nonfinite"].to(self.device)


class TwinCriticAgent(Agent):
    """An agent on state vectors whose `nets["actor"]` maps obs through one MLP (`.net`) and whose
    `nets["critic"]` is a `TwinQ` on (obs ‖ action): TD3 and SAC."""

    @torch.no_grad()
    def hidden_activations(self, batch: Batch) -> dict[str, list[torch.Tensor]]:
        sa = torch.cat((batch.obs, batch.action), dim=-1)
        critic = self.nets["critic"]
        return {
            "actor": self.nets["actor"].net.hidden_activations(batch.obs),
            "critic": critic.q1.hidden_activations(sa) + critic.q2.hidden_activations(sa),
        }


def _load_module(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    # Mask buffers start as None and are created by methods; restore them by assignment so a
    # checkpoint taken after masks appeared loads into a freshly built agent.
    for name, sub in module.named_modules():
        if hasattr(sub, "set_mask"):
            key = f"{name}.mask" if name else "mask"
            if key in state and state[key] is not None:
                sub.mask = state[key].to(sub.weight.device)
    module.load_state_dict(state)
