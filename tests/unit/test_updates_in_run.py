"""One count of "updates in this run" sizes every schedule counted in updates (NE, review ε, NaP, SET/RigL/GMP)."""

from __future__ import annotations

import pytest
import torch

from neuroplastic.agents.td3 import TD3, TD3Params
from neuroplastic.envs import EnvSpec
from neuroplastic.methods import METHODS, MethodStack, RunContext
from neuroplastic.methods.adaptive_rr import AdaptiveRR, AdaptiveRRParams
from neuroplastic.methods.base import updates_in_run
from tests.conftest import advance, build_run

CPU = torch.device("cpu")
STEPS, START = 1_025_000, 25_000


def _agent(name: str, adaptive_low: float | None = None):
    ctx = RunContext(seed=0, steps=STEPS, start_steps=START, device=CPU)
    cls = METHODS[name]
    method = cls(cls.Params(), ctx)
    extra = [] if adaptive_low is None else [AdaptiveRR(AdaptiveRRParams(low=adaptive_low), ctx)]
    stack = MethodStack([method, *extra])  # Adaptive RR listed *after* the method: order must not matter
    torch.manual_seed(0)
    agent = TD3(TD3Params(critic="td3", hidden=16), EnvSpec(11, 3, 1.0, 1000), CPU, stack, seed=0)
    return agent, method


def _schedule_length(name: str, method) -> int:
    if name == "ne":
        assert method.review.t_end == method.t_end  # the review threshold runs on the same clock
        assert all(g.t_end == method.t_end for g in method.growth.values())
        return method.t_end
    return method.total_updates


@pytest.mark.parametrize("name", ["ne", "nap", "rigl", "gmp"])
@pytest.mark.parametrize("ratio", [1.0, 0.5, 0.25])
def test_schedules_count_the_updates_the_run_makes(name, ratio):
    agent, method = _agent(name, adaptive_low=None if ratio == 1.0 else ratio)
    assert updates_in_run(method.ctx, agent) == int((STEPS - START) * ratio)
    assert _schedule_length(name, method) == int((STEPS - START) * ratio)


def test_ne_with_replay_ratio_one_half_reaches_full_density_within_the_run():
    """With 0.5 updates per step (DrQ-v2), NE's cosine must span the run's 500k updates, not 1M env steps."""
    _, ne = _agent("ne", adaptive_low=0.5)
    growth = ne.growth["critic"]
    updates = (STEPS - START) // 2
    # Topology updates at Δ, 2Δ, … < T_end; with T_end = 1M env steps they would offer only ≈ 80% of the space.
    total = sum(growth.fraction(t) for t in range(growth.params.delta, updates, growth.params.delta))
    assert total == pytest.approx(1.0, abs=0.03)
    assert growth.fraction(updates) == pytest.approx(0.0, abs=1e-12)  # the cosine ends with the run
    assert ne.review.eps(updates // 2) == pytest.approx(ne.params.review.eps_end)  # ε plateaus at half the run
    assert ne.review.eps(updates // 2 - 1000) > ne.params.review.eps_end


def test_helper_equals_the_loops_update_count():
    run, state = build_run(agent="td3", hidden=16)
    run.agent.replay_ratio = 0.5
    advance(run, state, run.cfg.steps)
    ctx = RunContext(seed=0, steps=run.cfg.steps, start_steps=run.cfg.start_steps, device=CPU)
    assert run.agent.updates == updates_in_run(ctx, run.agent) == (run.cfg.steps - run.cfg.start_steps) // 2
