"""The loop calls method hooks in the documented order, and methods compose."""

from __future__ import annotations

import pytest
import torch

from neuroplastic import loop, runs
from neuroplastic.methods import METHODS, Method, register
from tests.conftest import tiny_config

CALLS: list[tuple] = []


class Trace(Method):
    name = "_trace"

    def net_spec(self, role, spec):
        CALLS.append(("net_spec", role))
        return spec

    def on_build(self, agent):
        CALLS.append(("on_build", sorted(agent.nets), sorted(agent.optimizers)))

    def on_step(self, agent, step):
        CALLS.append(("on_step", step))

    def on_sample(self, agent, replay, step):
        # The agent is handed in (its update count: updates done before this sample's update).
        CALLS.append(("on_sample", step, agent.updates))
        return None

    def before_update(self, agent, update, roles):
        CALLS.append(("before_update", update, roles))
        return ()

    def extra_loss(self, agent, net):
        CALLS.append(("extra_loss", net))
        return None

    def before_optimizer_step(self, agent, net, update):
        CALLS.append(("before_opt", net, update))
        return True

    def after_optimizer_step(self, agent, net, update):
        CALLS.append(("after_opt", net, update))

    def after_target_update(self, agent):
        CALLS.append(("after_target",))

    def on_update(self, agent, batch, step):
        CALLS.append(("on_update", step))

    def log_metrics(self, agent, replay, step):
        CALLS.append(("log_metrics", step))
        return {"trace.calls": float(len(CALLS))}


class Freeze(Method):
    """Vetoes every optimizer step of the actor."""

    name = "_freeze_actor"

    def before_optimizer_step(self, agent, net, update):
        return net != "actor"


@pytest.fixture(autouse=True)
def _registered():
    register(Trace)
    register(Freeze)
    CALLS.clear()
    yield
    METHODS.pop("_trace")
    METHODS.pop("_freeze_actor")


def test_hooks_run_in_documented_order(tmp_path):
    cfg = runs.resolve(tiny_config(steps=6, start_steps=3, log_every=6, eval_every=6, method="_trace"))
    loop.train(cfg, tmp_path / "run", progress=False)
    assert CALLS[:3] == [("net_spec", "actor"), ("net_spec", "critic"), ("on_build", ["actor", "critic"], [])]
    body = CALLS[3:]
    # steps 1..3 are random collection: on_step only
    assert body[:3] == [("on_step", 1), ("on_step", 2), ("on_step", 3)]
    step4 = [
        ("on_step", 4),
        ("on_sample", 4, 0),
        ("before_update", 1, ("critic",)),
        ("extra_loss", "critic"),
        ("before_opt", "critic", 1),
        ("after_opt", "critic", 1),
        ("on_update", 4),
    ]
    step5 = [
        ("on_step", 5),
        ("on_sample", 5, 1),
        ("before_update", 2, ("critic", "actor")),
        ("extra_loss", "critic"),
        ("before_opt", "critic", 2),
        ("after_opt", "critic", 2),
        ("extra_loss", "actor"),
        ("before_opt", "actor", 2),
        ("after_opt", "actor", 2),
        ("after_target",),
        ("on_update", 5),
    ]
    assert body[3:10] == step4
    assert body[10:21] == step5
    assert body[-1] == ("log_metrics", 6)


def test_vetoed_optimizer_step_leaves_weights_and_composes(tmp_path):
    cfg = runs.resolve(
        tiny_config(steps=220, start_steps=200, log_every=220, eval_every=220, method=["_trace", "_freeze_actor"])
    )
    run = loop.build(cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in run.agent.nets["actor"].parameters()]
    critic_before = [p.detach().clone() for p in run.agent.nets["critic"].parameters()]
    for _ in range(20):
        run.replay.add(run.obs, run.env.action_space.sample(), 0.0, run.obs, False)
    for _ in range(4):
        run.agent.update(run.replay.sample(32))
    after = list(run.agent.nets["actor"].parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(critic_before, run.agent.nets["critic"].parameters(), strict=True))
    # the first method still saw every hook although the second vetoed the actor step
    assert ("before_opt", "actor", 4) in CALLS and ("after_opt", "actor", 4) in CALLS
