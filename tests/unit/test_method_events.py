"""The scheduled update-time event of a method, through its public API (`event_period`, `force_next_event`):
what benchmarks/throughput.py uses to time one event and amortise it over its period."""

from __future__ import annotations

import pytest

from neuroplastic import loop
from tests.conftest import advance, build_run, the_method


def _events(method) -> int:
    if method.name == "redo":
        return method.recycles
    if method.name.startswith("ne"):
        return sum(g.topology_updates for g in method.growth.values())
    return sum(method.mask_updates.values())


def _one_update(run: loop.Run, t: int) -> None:
    loop.run_updates(run, [loop.sample_batch(run, t)], t)


@pytest.mark.parametrize(
    ("entry", "period"),
    [
        ({"name": "ne", "growth": {"delta": 5000}}, 5000),
        ({"name": "rigl", "delta": 3000}, 3000),
        ({"name": "gmp", "delta": 700}, 700),
        ({"name": "redo", "interval": 4000}, 4000),
    ],
)
def test_a_forced_event_happens_on_the_next_update_only(entry, period):
    run, state = build_run(method=[entry])
    advance(run, state, 230)  # 30 updates: no event of these long periods is due (RigL's point 0 is served)
    method = the_method(run)
    assert method.event_period() == period
    before = _events(method)
    _one_update(run, 231)
    assert _events(method) == before
    method.force_next_event(run.agent)
    _one_update(run, 231)
    forced = _events(method)
    assert forced > before
    _one_update(run, 231)
    assert _events(method) == forced


@pytest.mark.parametrize("entry", [{"name": "layernorm"}, {"name": "static"}, {"name": "ne_static"}])
def test_methods_without_a_scheduled_event_say_so(entry):
    run, _ = build_run(method=[entry])
    method = the_method(run)
    assert method.event_period() is None
    if entry["name"] != "ne_static":  # NE without growth: nothing to force, the call does nothing
        with pytest.raises(NotImplementedError, match=entry["name"]):
            method.force_next_event(run.agent)
