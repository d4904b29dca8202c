"""ReDo — Recycling Dormant neurons (Sokar, Agarwal, Castro, Evci, ICML 2023).

Every `interval` gradient steps (within [`start_update`, `end_update`)), score every hidden unit of every MLP
of the selected networks on the current training batch (its first `score_batch` rows when set):
s_i = E|h_i| / (mean_k E|h_k| + 1e-9) over the post-activation outputs (`metrics.unit_scores`). A unit is
τ-dormant iff s_i ≤ τ. All scores are computed first, from one forward pass; then, for each dormant unit:
  1. its incoming weights (row of its layer) ← a fresh draw of the layer's own initializer (the agent's
     `build_net` under a seed derived from the run seed and the recycle number; the global RNG is untouched);
  2. its bias ← 0; where the layer has a LayerNorm with affine parameters, the unit's gain ← 1, offset ← 0;
  3. its outgoing weights (column(s) of the next layer) ← 0, after all incoming rows are redrawn (so an entry
     linking two dormant units ends up 0);
  4. the Adam moments (exp_avg, exp_avg_sq) of those incoming rows and outgoing columns (and of the LayerNorm
     entries) ← 0; the Adam step count is kept and the bias moments are kept unless `reset_bias_moments`
     (the official JAX code's behaviour).
The output layer's units are never recycled (its columns are zeroed only as a dormant unit's outgoing
weights). Target networks are left alone; they follow by Polyak averaging.

Conv channels (`conv`, on agents with `conv_chains()`, i.e. DrQ-v2's encoder): each output channel is a unit,
scored over batch and positions; a dormant channel gets a fresh filter and bias 0, its input-channel slice in
the next conv (for the last conv: the columns of its C·H·W flattened positions in every consumer, the actor
and critic trunks) ← 0, with the matching Adam moments, in the optimizer of the role that owns each tensor.

CReLU: unit i of a CReLU layer feeds two features, relu(x_i) and relu(−x_i); its activity is their summed
magnitude (= |x_i|) and its outgoing weights are columns i and H+i of the next layer. Masked (sparse) layers
keep their masked entries at zero. Everything runs on the device with no host synchronisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field, model_validator

from neuroplastic.methods._common import Nets, fresh_net, get_mlp, seed_for, select_nets
from neuroplastic.methods.base import Method, Params
from neuroplastic.metrics import unit_scores
from neuroplastic.nets import MLP, mlps

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Batch


class ReDoParams(Params):
    tau: float = Field(0.1, ge=0, description="Dormancy threshold τ (s ≤ τ is dormant).")
    interval: int = Field(1000, gt=0, description="Gradient steps between recycling steps.")
    score_batch: int | None = Field(
        None, gt=0, description="Rows of the training batch used for the scores; None = the whole batch."
    )
    nets: Nets = Field("both", description="Networks whose hidden units are recycled.")
    start_update: int = Field(0, ge=0, description="No recycling before this gradient step.")
    end_update: int | None = Field(
        None, gt=0, description="No recycling from this gradient step on (None = never stop)."
    )
    reset_bias_moments: bool = Field(False, description="Also zero the Adam moments of the recycled biases.")
    conv: bool = Field(
        True, description="Also recycle dormant channels of the agent's conv stacks (DrQ-v2's encoder), if any."
    )

    @model_validator(mode="after")
    def _window(self):
        if self.end_update is not None and self.end_update <= self.start_update:
            raise ValueError("end_update must be greater than start_update")
        return self


class ReDo(Method):
    name = "redo"
    smoke_params: ClassVar[dict[str, Any]] = {"interval": 100}
    Params = ReDoParams
    params: ReDoParams

    def __init__(self, params: ReDoParams, ctx) -> None:
        super().__init__(params, ctx)
        # Fraction of hidden units recycled at the latest recycling step, per role (device tensors).
        self.last_fraction: dict[str, torch.Tensor] = {}
        self.recycles = 0
        self._forced = False

    def on_build(self, agent: Agent) -> None:
        select_nets(self.params.nets, agent, self.name)
        batch_size = getattr(agent.params, "batch_size", None)
        score_batch = self.params.score_batch
        if batch_size is not None and score_batch is not None and score_batch > batch_size:
            raise ValueError(f"redo.score_batch={self.params.score_batch} exceeds the agent's batch_size={batch_size}")

    def on_update(self, agent: Agent, batch: Batch, step: int) -> None:
        p, u = self.params, agent.updates
        due = u % p.interval == 0 and u >= p.start_update and (p.end_update is None or u < p.end_update)
        if not (due or self._forced):
            return
        self._forced = False
        self.recycle(agent, batch, u // p.interval)

    def event_period(self) -> int | None:
        return self.params.interval

    def force_next_event(self, agent: Agent) -> None:
        self._forced = True

    @torch.no_grad()
    def recycle(self, agent: Agent, batch: Batch, number: int) -> dict[str, list[torch.Tensor]]:
        """Recycle the dormant units now; returns the dormant masks per role (one bool tensor per hidden layer)."""
        n = self.params.score_batch
        sub = batch if n is None else type(batch)(*(t[:n] for t in batch))
        activations = agent.hidden_activations(sub)
        dormant_by_role: dict[str, list[torch.Tensor]] = {}
        for role in select_nets(self.params.nets, agent, self.name):
            net = agent.nets[role]
            nets_mlps = mlps(net)
            acts = activations[role]
            expected = sum(len(m.layers) - 1 for _, m in nets_mlps)
            if len(acts) != expected:
                raise RuntimeError(
                    f"redo: {role} has {expected} hidden layers but hidden_activations gave {len(acts)}; "
                    "ReDo cannot run on a network whose structure another method changed (e.g. injection)"
                )
            fresh = fresh_net(agent, role, seed_for(self.ctx, "redo", number, role))
            opt = agent.optimizers.get(role)
            masks, total = [], 0
            for name, mlp in nets_mlps:
                layer_acts, acts = acts[: len(mlp.layers) - 1], acts[len(mlp.layers) - 1 :]
                dormant = [self._dormant(mlp, h) for h in layer_acts]
                self._recycle_mlp(mlp, get_mlp(fresh, name), dormant, opt)
                masks += dormant
                total += sum(d.numel() for d in dormant)
            self.last_fraction[role] = torch.stack([d.sum() for d in masks]).sum() / total
            dormant_by_role[role] = masks
        if self.params.conv:
            for chain in agent.conv_chains():
                masks = [unit_scores(h) <= self.params.tau for h in activations[chain.role]]
                if len(masks) != len(chain.convs):
                    raise RuntimeError(
                        f"redo: {chain.role} has {len(chain.convs)} convs but hidden_activations gave {len(masks)}"
                    )
                fresh = fresh_net(agent, chain.role, seed_for(self.ctx, "redo", number, chain.role))
                self._recycle_convs(agent, chain, fresh, masks)
                total = sum(d.numel() for d in masks)
                self.last_fraction[chain.role] = torch.stack([d.sum() for d in masks]).sum() / total
                dormant_by_role[chain.role] = masks
        self.recycles += 1
        return dormant_by_role

    def _recycle_convs(self, agent: Agent, chain, fresh: torch.nn.Module, dormant: list[torch.Tensor]) -> None:
        """Conv channels as units: incoming filter ← fresh, bias ← 0; outgoing input-channel slices of the next
        conv (or the consumers' columns of that channel's flattened positions) ← 0; their Adam moments ← 0."""
        net, opt = agent.nets[chain.role], agent.optimizers.get(chain.role)
        convs = [net.get_submodule(name) for name in chain.convs]
        for conv, name, dead in zip(convs, chain.convs, dormant, strict=True):
            live = (~dead).to(conv.weight.dtype)
            new = fresh.get_submodule(name).weight.to(conv.weight.device)
            conv.weight.copy_(torch.where(dead[:, None, None, None], new, conv.weight))
            _zero_moments(opt, conv.weight, live[:, None, None, None])
            if conv.bias is not None:
                conv.bias.mul_(live)
                if self.params.reset_bias_moments:
                    _zero_moments(opt, conv.bias, live)
        for k, dead in enumerate(dormant):
            live = (~dead).to(convs[k].weight.dtype)
            if k + 1 < len(convs):
                convs[k + 1].weight.mul_(live[None, :, None, None])
                _zero_moments(opt, convs[k + 1].weight, live[None, :, None, None])
                continue
            for role, name in chain.consumers:
                layer = agent.nets[role].get_submodule(name)
                positions = layer.weight.shape[1] // live.numel()
                cols = live.repeat_interleave(positions)[None, :]
                layer.weight.mul_(cols)
                _zero_moments(agent.optimizers.get(role), layer.weight, cols)

    def _dormant(self, mlp: MLP, h: torch.Tensor) -> torch.Tensor:
        if mlp.spec.activation == "crelu":
            width = h.shape[-1] // 2
            h = h[..., :width].abs() + h[..., width:].abs()
        return unit_scores(h) <= self.params.tau

    def _recycle_mlp(self, mlp: MLP, fresh: MLP, dormant: list[torch.Tensor], opt) -> None:
        crelu = mlp.spec.activation == "crelu"
        for i, dead in enumerate(dormant):
            layer, norm = mlp.layers[i], mlp.norms[i]
            live_rows = (~dead).to(layer.weight.dtype)
            # Incoming weights: fresh rows for dormant units, bias 0.
            layer.weight.copy_(torch.where(dead[:, None], fresh.layers[i].weight, layer.weight))
            if layer.mask is not None:
                layer.weight.mul_(layer.mask)
            _zero_moments(opt, layer.weight, live_rows[:, None])
            if layer.bias is not None:
                layer.bias.mul_(live_rows)
                if self.params.reset_bias_moments:
                    _zero_moments(opt, layer.bias, live_rows)
            if getattr(norm, "weight", None) is not None:
                norm.weight.copy_(torch.where(dead, torch.ones_like(norm.weight), norm.weight))
                norm.bias.mul_(live_rows)
                _zero_moments(opt, norm.weight, live_rows)
                _zero_moments(opt, norm.bias, live_rows)
        # Outgoing weights last: where a dormant unit feeds a dormant unit of the next layer, the entry is 0.
        for i, dead in enumerate(dormant):
            nxt = mlp.layers[i + 1]
            live_rows = (~dead).to(nxt.weight.dtype)
            live_cols = torch.cat((live_rows, live_rows)) if crelu else live_rows
            nxt.weight.mul_(live_cols[None, :])
            _zero_moments(opt, nxt.weight, live_cols[None, :])

    def log_metrics(self, agent: Agent, replay, step: int) -> dict[str, float]:
        out = {f"redo.recycled_fraction.{role}": float(v) for role, v in self.last_fraction.items()}
        out["redo.recycles"] = float(self.recycles)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"recycles": self.recycles, "last_fraction": {k: v.cpu() for k, v in self.last_fraction.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recycles = state["recycles"]
        self.last_fraction = {k: v.to(self.ctx.device) for k, v in state["last_fraction"].items()}


def _zero_moments(opt: torch.optim.Optimizer | None, param: torch.Tensor, keep: torch.Tensor) -> None:
    if opt is None:
        return
    state = opt.state.get(param)
    if not state:
        return
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        if key in state:
            state[key].mul_(keep)
