"""The captured update: one agent update (critic, actor, temperature, targets and the per-update work of every
method) run as one compiled function (`torch.compile(fullgraph=True)`) or replayed as a CUDA graph.

Modes (a run option, never part of the run's identity, like `--device`):
- `off`      the eager `agent.update` (the CPU default; bit-identical logs and kill-9 resume);
- `compile`  `torch.compile(fullgraph=True)` of the update (inductor on CUDA; `backend=` picks another, e.g. the
             tests trace with `aot_eager`, which checks capturability in seconds);
- `graphs`   the update captured as a CUDA graph (capturable Adam, optimizer state on the device, static batch
             buffers the sampled batch is copied into) and replayed; CUDA only;
- `auto`     `graphs` on CUDA, `off` elsewhere.

What runs where. The update is one plain function of tensors: `agent.learn(batch, update, policy)`, with every
method's update hooks inside it (`extra_loss`, `before_optimizer_step`, `after_optimizer_step`,
`after_target_update`: the methods' per-update work). Its host side runs first, the same way in every mode:
`Agent.begin_update` counts the update, decides whether it is a policy update (TD3's delayed actor; DQN's periodic
hard target copy), calls each method's one host hook, `Method.before_update` (advance a clock, sync mask copies,
decide whether a scheduled event falls in this update), then the agent's one host hook, `Agent.before_learn`
(write the host values `learn` reads into the agent's device tensors in place: DrQ-v2's std schedule). An update
for which a method returned `EVENT` (an NE/SET/RigL/GMP topology update, whose hooks do host work) runs `learn`
eagerly; every other update runs the captured function, one per `policy` value and per value of what `learn` and
the hooks branch on (the agent's `capture_key()` and the values methods return), rebuilt when that changes. Nothing
in a method or an agent's `learn` knows which way it runs: only `Agent._optimize` calls into this module, whose
`zero_grad` and `optimizer_step` are, inside the captured function, the functional Adam over lists prepared here
(`torch.optim.Optimizer.step` breaks graphs on purpose), with the optimizers' learning rates (set on the host: NaP,
PPO's decay) written into tensors before every call. On-policy agents (PPO): one captured call is one
minibatch step; preparing the rollout (normalisers, updated in place, and advantages), the epochs and the
learning-rate decay stay on the host (`Agent.rollout_batches`).

Events between updates (ReDo, Reset, Shrink & Perturb, Plasticity Injection, Adaptive RR, topology updates)
either write in place into the tensors the capture reads (masks through `Topology.sync_`'s float-mask copies,
weights, Adam moments), or replace them. Each method declares which in `Method.capture`:
- `in_place`: its events keep every tensor the capture reads (identity and shape);
- `rebuild`:  its events may replace tensors (modules, optimizers, optimizer state); the capture fingerprints the
              networks and optimizers before every update and rebuilds itself when the fingerprint changes;
- `eager`:    it cannot be captured; the run falls back to the eager update with a one-line warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from neuroplastic.methods.base import EVENT

if TYPE_CHECKING:
    from neuroplastic.agents.base import Agent
    from neuroplastic.replay import Batch

COMPILE_MODES: tuple[str, ...] = ("off", "compile", "graphs", "auto")
CAPTURE_KINDS: tuple[str, ...] = ("in_place", "rebuild", "eager")
BACKEND_ENV = "NEUROPLASTIC_COMPILE_BACKEND"
# Updates run eagerly on a side stream before a CUDA graph is captured (allocator and cuBLAS warm-up).
GRAPH_WARMUP_UPDATES = 3

_ACTIVE: CapturedUpdate | None = None


def resolve_mode(mode: str, device: torch.device) -> str:
    """`auto` → `graphs` on CUDA, `off` elsewhere; `graphs` off CUDA is an error."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"--compile {mode!r}: choose one of {', '.join(COMPILE_MODES)}")
    if mode == "auto":
        return "graphs" if device.type == "cuda" else "off"
    if mode == "graphs" and device.type != "cuda":
        raise ValueError(f"--compile graphs needs a CUDA device (the run is on {device}); use compile or off")
    return mode


@contextmanager
def _active(capture: CapturedUpdate) -> Iterator[None]:
    global _ACTIVE
    _ACTIVE = capture
    try:
        yield
    finally:
        _ACTIVE = None


def zero_grad(agent: Agent, role: str) -> None:
    """`optimizer.zero_grad(set_to_none=True)`; inside the capture the same, written traceably."""
    if _ACTIVE is None:
        agent.optimizers[role].zero_grad(set_to_none=True)
        return
    for p in _ACTIVE.views[role].all_params:
        p.grad = None


def optimizer_step(agent: Agent, role: str) -> None:
    """`optimizer.step()`; inside the capture the functional Adam over the prepared state lists."""
    if _ACTIVE is None:
        agent.optimizers[role].step()
        return
    _ACTIVE.views[role].step()


@dataclass
class _GroupView:
    params: list[torch.Tensor]
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    steps: list[torch.Tensor]
    group: dict[str, Any]
    lr: torch.Tensor
    lr_value: float


class _OptimizerView:
    """Adam's state as plain lists, so the traced update steps it with `torch.optim.adam.adam`."""

    def __init__(self, optimizer: torch.optim.Optimizer, capturable: bool) -> None:
        if type(optimizer) is not torch.optim.Adam:
            raise NotImplementedError(f"the captured update steps Adam only, not {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.capturable = capturable
        self.groups: list[_GroupView] = []
        self.all_params: list[torch.Tensor] = []
        for group in optimizer.param_groups:
            unsupported = [k for k in ("amsgrad", "maximize", "differentiable", "weight_decay") if group.get(k)]
            if unsupported:
                raise NotImplementedError(f"the captured update's Adam does not support {', '.join(unsupported)}")
            params = [p for p in group["params"] if p.requires_grad]
            states = [optimizer.state[p] for p in params]
            dev = params[0].device if params else torch.device("cpu")
            lr = torch.tensor(float(group["lr"]), dtype=torch.float32, device=dev if capturable else "cpu")
            self.groups.append(
                _GroupView(
                    params=params,
                    exp_avgs=[s["exp_avg"] for s in states],
                    exp_avg_sqs=[s["exp_avg_sq"] for s in states],
                    steps=[s["step"] for s in states],
                    group=group,
                    lr=lr,
                    lr_value=float(group["lr"]),
                )
            )
            self.all_params.extend(params)

    def refresh_lr(self) -> None:
        """Learning rates set on the host (NaP's linear schedule, PPO's decay per iteration) reach the capture
        through a tensor (written only when the value changed: on CUDA each write is a kernel launch)."""
        for g in self.groups:
            lr = float(g.group["lr"])
            if lr != g.lr_value:
                g.lr.fill_(lr)
                g.lr_value = lr

    def step(self) -> None:
        """Adam (torch's update rule, weight decay 0) in a few foreach ops over all parameters of a
        group: a short trace, and device-side step counters and learning rate, so it is CUDA-graph safe."""
        with torch.no_grad():
            for g in self.groups:
                if not g.params:
                    continue
                beta1, beta2 = g.group["betas"]
                grads = [p.grad for p in g.params]
                torch._foreach_add_(g.steps, 1.0)
                torch._foreach_lerp_(g.exp_avgs, grads, 1.0 - beta1)
                torch._foreach_mul_(g.exp_avg_sqs, beta2)
                torch._foreach_addcmul_(g.exp_avg_sqs, grads, grads, value=1.0 - beta2)
                # −lr / (1 − β₁ᵗ) and √(1 − β₂ᵗ), per parameter (NE may restart one parameter's t).
                neg_step_size = torch._foreach_pow(beta1, g.steps)
                torch._foreach_sub_(neg_step_size, 1.0)
                torch._foreach_reciprocal_(neg_step_size)
                torch._foreach_mul_(neg_step_size, g.lr)
                bc2_sqrt = torch._foreach_pow(beta2, g.steps)
                torch._foreach_neg_(bc2_sqrt)
                torch._foreach_add_(bc2_sqrt, 1.0)
                torch._foreach_sqrt_(bc2_sqrt)
                denom = torch._foreach_sqrt(g.exp_avg_sqs)
                torch._foreach_div_(denom, bc2_sqrt)
                torch._foreach_add_(denom, g.group["eps"])
                update = torch._foreach_div(g.exp_avgs, denom)
                torch._foreach_mul_(update, neg_step_size)
                torch._foreach_add_(g.params, update)


def _optimizer_ready(opt: torch.optim.Optimizer) -> bool:
    """Adam creates its state lazily at a parameter's first step; until every trainable parameter has state
    (the first updates; after Reset drops it) the update runs eagerly."""
    return all(p in opt.state and opt.state[p] for g in opt.param_groups for p in g["params"] if p.requires_grad)


def _make_capturable(opt: torch.optim.Optimizer) -> None:
    """CUDA graphs: Adam's step counters move to the device and every group becomes `capturable`, so the eager
    fallback updates and the replays step the same tensors without a host sync."""
    for group in opt.param_groups:
        group["capturable"] = True
        for p in group["params"]:
            state = opt.state.get(p)
            if state and isinstance(state.get("step"), torch.Tensor) and state["step"].device != p.device:
                state["step"] = state["step"].to(p.device)


class CapturedUpdate:
    """Drop-in for `agent.update(batch)`: counts the update, runs it captured when it can, eagerly when not."""

    def __init__(self, agent: Agent, mode: str, backend: str | None = None) -> None:
        if mode not in ("compile", "graphs"):
            raise ValueError(f"CapturedUpdate runs mode compile or graphs, not {mode!r}")
        if mode == "graphs" and agent.device.type != "cuda":
            raise ValueError("graphs mode needs the agent on a CUDA device")
        self.agent = agent
        self.mode = mode
        self.backend = backend
        methods = list(agent.methods)
        self.eager_methods = [m.name for m in methods if m.capture == "eager"]
        self.watch_structure = any(m.capture == "rebuild" for m in methods)
        for m in methods:
            if m.capture not in CAPTURE_KINDS:
                raise ValueError(f"method {m.name}: capture = {m.capture!r}, not one of {CAPTURE_KINDS}")
        if self.eager_methods:
            warnings.warn(
                f"--compile {mode}: method(s) {', '.join(self.eager_methods)} cannot be captured; "
                "this run's updates run eagerly",
                stacklevel=2,
            )
        self.views: dict[str, _OptimizerView] = {}
        # Adam has state for every parameter (checked per update until true; again after rebuilds when a
        # `rebuild` method may drop state).
        self._ready = False
        self._fingerprint: tuple | None = None
        self._compiled: dict[bool, Callable[[Batch], None]] = {}
        self._graphs: dict[bool, _Graph] = {}
        self._warmup_left = GRAPH_WARMUP_UPDATES
        self._bodies = 0
        # Counters for tests and benchmarks: how many updates ran captured, eagerly, and how often it rebuilt.
        self.captured_updates = 0
        self.eager_updates = 0
        self.builds = 0

    # --- deciding ------------------------------------------------------------------------------
    def _structure(self) -> tuple:
        """Identity of every tensor and object the capture holds: changes when a `rebuild` method replaced one."""
        agent = self.agent
        ids: list[int] = [id(agent._nonfinite)] if hasattr(agent, "_nonfinite") else []
        for role, net in agent.nets.items():
            ids.append(id(net))
            ids.extend(id(p) for p in net.parameters())
            ids.extend(id(b) for b in net.buffers())
            opt = agent.optimizers.get(role)
            if opt is not None:
                ids.append(id(opt))
                for group in opt.param_groups:
                    for p in group["params"]:
                        state = opt.state.get(p)
                        ids.append(id(p))
                        if state:
                            ids.extend(id(v) for v in state.values())
                        else:
                            ids.append(-1)
        for net in agent.targets.values():
            ids.append(id(net))
            ids.extend(id(p) for p in net.parameters())
            ids.extend(id(b) for b in net.buffers())
        return tuple(ids)

    def _stepped_roles(self) -> set[str]:
        """Optimizers some update steps (SAC's temperature optimizer never steps with a fixed temperature)."""
        agent = self.agent
        return {r for r in (*agent.update_roles(True), *agent.update_roles(False)) if r in agent.optimizers}

    def _fingerprint_of(self, method_keys: tuple) -> tuple:
        """What the captured function was built for: the optimizers, the host values the agent's `learn` and the
        methods' hooks branch on, and (with a `rebuild` method) the identity of every tensor it holds."""
        agent = self.agent
        optimizers = tuple(id(o) for o in agent.optimizers.values())
        return (optimizers, agent.capture_key(), method_keys, self._structure() if self.watch_structure else ())

    def _build(self, method_keys: tuple) -> None:
        agent = self.agent
        capturable = self.mode == "graphs"
        stepped = [r for r in agent.optimizers if r in self._stepped_roles()]
        if capturable:
            for r in stepped:
                _make_capturable(agent.optimizers[r])
        self.views = {r: _OptimizerView(agent.optimizers[r], capturable) for r in stepped}
        self._compiled.clear()
        self._graphs.clear()
        self._warmup_left = GRAPH_WARMUP_UPDATES
        self.builds += 1
        # Taken after the build, so a build that itself changed tensors (capturable step counters) does not count
        # as a change.
        self._fingerprint = self._fingerprint_of(method_keys)

    def _refresh_learning_rates(self) -> None:
        for view in self.views.values():
            view.refresh_lr()

    # --- running -------------------------------------------------------------------------------
    def __call__(self, batch: Batch) -> None:
        agent = self.agent
        update, policy, method_keys = agent.begin_update()
        if not self._ready or self.watch_structure:
            self._ready = all(_optimizer_ready(agent.optimizers[r]) for r in self._stepped_roles())
        if self.eager_methods or not self._ready or any(key is EVENT for key in method_keys):
            agent.learn(batch, update, policy)
            self.eager_updates += 1
            return
        if not self.views or self._fingerprint_of(method_keys) != self._fingerprint:
            self._build(method_keys)
        self._refresh_learning_rates()
        if self.mode == "compile":
            self._run_compiled(batch, policy)
        else:
            self._run_graph(batch, policy)
        self.captured_updates += 1

    def _body(self, policy: bool) -> Callable[[Batch], None]:
        agent = self.agent
        # The update number handed to hooks inside the capture is a placeholder: hooks read it only for
        # host-side events, and updates with events never run captured.
        rep = 0

        def body(batch: Batch) -> None:
            agent.learn(batch, rep, policy)

        # Dynamo keeps its compiled entries (and their limit) per code object: a code object of its own per
        # capture and build keeps captures of other agents in this process (tests, benchmarks) from counting.
        self._bodies += 1
        body.__code__ = body.__code__.replace(co_name=f"captured_update_{id(self):x}_{self._bodies}")
        return body

    def _run_compiled(self, batch: Batch, policy: bool) -> None:
        fn = self._compiled.get(policy)
        if fn is None:
            kwargs: dict[str, Any] = {"fullgraph": True, "dynamic": False}
            if self.backend is not None:
                kwargs["backend"] = self.backend
            fn = torch.compile(self._body(policy), **kwargs)
            self._compiled[policy] = fn
        with _dynamo_settings(), _active(self):
            fn(batch)

    def _run_graph(self, batch: Batch, policy: bool) -> None:
        graph = self._graphs.get(policy)
        if graph is None:
            if self._warmup_left > 0:
                self._warmup_left -= 1
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream), _active(self):
                    self._body(policy)(batch)
                torch.cuda.current_stream().wait_stream(stream)
                return
            graph = _Graph(self, self._body(policy), batch, pool=self._pool())
            self._graphs[policy] = graph
        graph.replay(batch)

    def _pool(self) -> Any:
        for g in self._graphs.values():
            return g.graph.pool()
        return None


class _Graph:
    """One CUDA graph of the update: the batch is copied into static buffers, then the graph is replayed.

    Capturing records without running, so the update that triggers the capture is performed by its first replay.
    The attributes the update assigns (`agent.capture_outputs`, e.g. the latest losses) are re-pointed at the
    graph's static outputs after every replay, since an eager update in between may have re-assigned them.
    """

    def __init__(self, capture: CapturedUpdate, body: Callable[[Batch], None], batch: Batch, pool: Any) -> None:
        agent = capture.agent
        self.agent = agent
        self.static = type(batch)(*(t.clone() for t in batch))
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool), _active(capture):
            body(self.static)
        self.outputs = {name: _shallow_copy(getattr(agent, name, None)) for name in agent.capture_outputs}

    def replay(self, batch: Batch) -> None:
        for dst, src in zip(self.static, batch, strict=True):
            dst.copy_(src, non_blocking=True)
        self.graph.replay()
        for name, value in self.outputs.items():
            setattr(self.agent, name, _shallow_copy(value))


def _shallow_copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


@contextmanager
def _dynamo_settings() -> Iterator[None]:
    """Dynamo traces `loss.backward()` into the graph only with `trace_autograd_ops` on. Hitting the recompile
    limit is an error rather than a silent fall back to eager."""
    import torch._dynamo

    config = torch._dynamo.config
    wanted = {"trace_autograd_ops": True, "fail_on_cache_limit_hit": True}
    saved = {k: getattr(config, k) for k in wanted}
    for k, v in wanted.items():
        setattr(config, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(config, k, v)


def make_update(agent: Agent, mode: str, backend: str | None = None) -> Callable[[Batch], None]:
    """The update function a run uses: `agent.update` for `off`, else a `CapturedUpdate`. The compile backend is
    torch's default (inductor) unless `backend` or $NEUROPLASTIC_COMPILE_BACKEND names another (e.g. `eager`,
    `aot_eager`: tracing only, for checks on a CPU where inductor takes a minute per trace)."""
    mode = resolve_mode(mode, agent.device)
    if mode == "off":
        return agent.update
    return CapturedUpdate(agent, mode, backend=backend or os.environ.get(BACKEND_ENV) or None)


__all__ = [
    "COMPILE_MODES",
    "CapturedUpdate",
    "make_update",
    "optimizer_step",
    "resolve_mode",
    "zero_grad",
]
