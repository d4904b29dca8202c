"""Adaptive RR (planted critic-FAU sequences) and the data-augmentation switch."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from neuroplastic.methods.adaptive_rr import AdaptiveRR, AdaptiveRRParams
from neuroplastic.methods.base import RunContext
from neuroplastic.methods.data_augmentation import DataAugmentation, DataAugmentationParams

CTX = RunContext(seed=0, steps=10**6, start_steps=0, device=torch.device("cpu"))


class PlantedAgent:
    """Just what Adaptive RR touches: a critic, a critic FAU per update, and a counted replay ratio."""

    name = "planted"

    def __init__(self) -> None:
        self.nets = {"critic": None}
        self.track_critic_fau = False
        self.value = 0.0
        self.assignments: list[float] = []
        self._rr = 1.0

    @property
    def replay_ratio(self) -> float:
        return self._rr

    @replay_ratio.setter
    def replay_ratio(self, v: float) -> None:
        self.assignments.append(v)
        self._rr = v

    def critic_fau(self) -> torch.Tensor:
        return torch.tensor(self.value)


def _drive(method: AdaptiveRR, agent: PlantedAgent, per_episode: list[list[float]], steps_per_episode: int = 10):
    """Each inner list: the critic FAU of the updates of one episode; the episode then ends."""
    step = 0
    for k, values in enumerate(per_episode, start=1):
        for v in values:
            agent.value = v
            method.on_update(agent, None, step)
        step += steps_per_episode
        method.on_episode_end(agent, k, step)
    return step


def test_switch_fires_exactly_once_when_fau_plateaus():
    agent = PlantedAgent()
    m = AdaptiveRR(AdaptiveRRParams(check_every=3, threshold=0.001), CTX)
    m.on_build(agent)
    assert agent.replay_ratio == 0.5 and agent.track_critic_fau
    # FAU falls 0.02 per episode for 12 episodes, then stays flat for 12, then falls and plateaus again.
    falling = [[0.9 - 0.02 * k] * 4 for k in range(12)]
    flat = [[0.66] * 4 for _ in range(12)]
    again = [[0.5 - 0.05 * k] * 4 for k in range(6)] + [[0.2] * 4 for _ in range(9)]
    _drive(m, agent, falling + flat)
    # checks at episodes 3, 6, 9, 12 compare values 0.02·3 apart; episode 15's value (0.66) vs episode 12's
    # (0.68) differs by 0.02; episode 18 (0.66) vs 15 (0.66) is the first plateau
    assert m.switch_episode == 18 and m.switch_step == 180
    assert agent.replay_ratio == 2.0
    _drive(m, agent, again)
    assert agent.assignments == [0.5, 2.0]  # once at build, once at the switch: never again
    assert m.switch_episode == 18
    logged = m.log_metrics(agent, None, 0)
    assert logged["adaptive_rr.switch_step"] == 180 and logged["adaptive_rr.switched"] == 1.0


def test_first_reference_is_the_first_update_in_code_mode():
    agent = PlantedAgent()
    m = AdaptiveRR(AdaptiveRRParams(check_every=2, threshold=0.001), CTX)
    m.on_build(agent)
    # first update 0.5, then the single episode before the first check (episode 2) averages 0.5 too
    _drive(m, agent, [[0.5, 0.9, 0.1], [0.4, 0.6]])
    assert m.switch_episode == 2


def test_code_mode_averages_only_the_episode_before_the_check():
    """Episodes 1-3 of each 4-episode window vary wildly; the episode before each check is flat at 0.7.

    The code-faithful mode sees only that last episode (0.7 vs 0.7) and switches at the second check; the
    interval mode averages the whole window, which moves, and does not switch."""
    window = [[0.1] * 3, [0.9] * 3, [0.3 + 0.1 * i for i in range(3)], [0.7] * 3]
    shifted = [[0.2] * 3, [0.95] * 3, [0.6] * 3, [0.7] * 3]
    seq = window + shifted + window

    code_agent, code = PlantedAgent(), AdaptiveRR(AdaptiveRRParams(check_every=4, threshold=0.001), CTX)
    code.on_build(code_agent)
    _drive(code, code_agent, seq)
    assert code.switch_episode == 8

    alt_agent = PlantedAgent()
    alt = AdaptiveRR(AdaptiveRRParams(check_every=4, threshold=0.001, average="interval"), CTX)
    alt.on_build(alt_agent)
    _drive(alt, alt_agent, seq)
    assert alt.switch_step is None and alt_agent.replay_ratio == 0.5 and alt.checks == 3


def test_interval_mode_switches_on_a_flat_window_and_state_roundtrips():
    agent = PlantedAgent()
    m = AdaptiveRR(AdaptiveRRParams(check_every=2, threshold=0.01, average="interval"), CTX)
    m.on_build(agent)
    _drive(m, agent, [[0.8, 0.6], [0.7, 0.7]])  # first check: reference only
    assert m.switch_step is None and m.checks == 1
    clone = AdaptiveRR(AdaptiveRRParams(check_every=2, threshold=0.01, average="interval"), CTX)
    clone.load_state_dict(m.state_dict())
    other = PlantedAgent()
    other._rr = 0.5
    for meth, ag in ((m, agent), (clone, other)):
        for v in (0.705, 0.7, 0.69, 0.7):
            ag.value = v
            meth.on_update(ag, None, 0)
        meth.on_episode_end(ag, 3, 30)
        meth.on_episode_end(ag, 4, 40)
    assert m.switch_episode == clone.switch_episode == 4
    assert agent.replay_ratio == other.replay_ratio == 2.0


def test_params_are_checked():
    with pytest.raises(ValidationError, match="high must be greater than low"):
        AdaptiveRRParams(low=2.0, high=0.5)


class DAAgent:
    name = "drqv2"

    def __init__(self) -> None:
        self.augment = True
        self.params = type("P", (), {"aug_pad": 4})()


@pytest.mark.parametrize(
    ("enabled", "from_step", "before", "after"),
    [(False, 0, False, False), (False, 100, True, False), (True, 100, False, True), (True, 0, True, True)],
)
def test_data_augmentation_switch(enabled, from_step, before, after):
    agent = DAAgent()
    m = DataAugmentation(DataAugmentationParams(enabled=enabled, from_step=from_step), CTX)
    m.on_build(agent)
    for step in range(1, 100):
        m.on_step(agent, step)
        assert agent.augment is before
    for step in range(100, 110):
        m.on_step(agent, step)
        assert agent.augment is after
    assert m.log_metrics(agent, None, 0) == {"da.enabled": float(after)}
