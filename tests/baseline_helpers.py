"""Helpers for the baseline-method tests: build a run, step it with the loop's own iteration, compare states."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from neuroplastic import config, loop
from neuroplastic.seeding import global_rng_state, set_global_rng_state
from tests.conftest import tiny_config

# Each run built here keeps its own copy of the global RNGs, so that several runs can be stepped in turn in one
# process exactly as each would run alone.
_RNG: dict[int, dict] = {}


@contextmanager
def one_thread():
    """Torch on one thread: tiny networks gain nothing from two, and two threads spin badly on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build(method=None, agent: str = "td3", hidden: int = 32, **overrides) -> tuple[loop.Run, loop.LoopState]:
    cfg = config.resolve(
        tiny_config(agent={"name": agent, "hidden": hidden, "batch_size": 64}, method=method or [], **overrides)
    )
    run = loop.build(cfg, torch.device("cpu"))
    _RNG[id(run)] = global_rng_state()
    return run, loop.LoopState()


def advance(run: loop.Run, state: loop.LoopState, until: int) -> None:
    """Run loop iterations (collect, on_step, update, on_update) up to and including env step `until`."""
    set_global_rng_state(_RNG[id(run)])
    while state.step < until:
        loop.advance(run, state, state.step + 1)
    _RNG[id(run)] = global_rng_state()


def the_method(run: loop.Run, index: int = 0):
    return run.methods.methods[index]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v is not None}


def equal_states(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths at which two nested checkpoint-like structures differ (empty = identical)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return [path]
        return [] if a.shape == b.shape and torch.equal(a, b) else [path]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return [] if np.array_equal(a, b) else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}.keys"]
        return [d for k in a for d in equal_states(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}.len"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in equal_states(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def full_state(run: loop.Run) -> dict[str, Any]:
    """Agent (weights, targets, optimizers, counters), replay and the global torch RNG."""
    return {"agent": run.agent.state_dict(), "replay": run.replay.state_dict(), "torch_rng": _RNG[id(run)]["torch"]}
