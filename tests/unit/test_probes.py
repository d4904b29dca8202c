"""The Fig. 4 forgetting probe: off by default without touching run ids, config errors name the key, it measures
frozen early-stage data, it never changes training, and a resumed run is bit-identical with it on."""

from __future__ import annotations

import json
import math

import pytest

from neuroplastic import config, loop, probes, runlog, runs
from tests.conftest import tiny_config, train_until_first_checkpoint

# Run id of tiny_config() computed on main before the `probe` section existed.
TINY_RUN_ID_BEFORE_PROBE = "006688afa88c"
PROBE = {"early_fraction": 0.5, "transitions": 40, "states": 3, "episode_steps": 25}


def probe_config(**overrides) -> dict:
    agent = {"name": "td3", "hidden": 32, "batch_size": 32}
    return tiny_config(agent=agent, log_every=100, eval_every=300, **overrides)


def test_absent_probe_leaves_run_ids_and_json_unchanged():
    cfg = runs.resolve(tiny_config())
    assert "probe" not in json.loads(config.canonical_json(cfg))
    assert config.run_id(cfg) == TINY_RUN_ID_BEFORE_PROBE
    on = runs.resolve(tiny_config(probe={}))
    assert json.loads(config.canonical_json(on))["probe"] == {
        "early_fraction": 0.1,
        "transitions": 1000,
        "states": 5,
        "episode_steps": 1000,
    }
    assert config.run_id(on) != TINY_RUN_ID_BEFORE_PROBE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"env": "dmc:cheetah-run"}, "probe: needs a gymnasium MuJoCo env"),
        ({"agent": {"name": "td3", "buffer_size": 300}}, "probe: the replay buffer (300) is overwritten"),
        ({"probe": {"early_fraction": 0}}, "probe.early_fraction"),
        ({"probe": {"state": 3}}, "probe.state: unknown key"),
    ],
)
def test_probe_config_errors_name_the_key(overrides, message):
    data = tiny_config(probe={"early_fraction": 0.5, "transitions": 50})
    data.update(overrides)
    with pytest.raises(config.ConfigError) as err:
        runs.resolve(data)
    assert message in str(err.value)


def test_early_window_and_selection():
    cfg = runs.resolve(tiny_config(probe=PROBE))
    assert probes.early_window(cfg) == (201, 400)
    probe = probes.ForgettingProbe(cfg)
    assert sorted(probe.state_steps) == [201, 300, 400]
    assert probe.transition_steps[0] == 201 and probe.transition_steps[-1] == 400
    assert len(probe.transition_steps) == 40
    # The counts are upper bounds: a window shorter than them gives every step once.
    small = probes.ForgettingProbe(runs.resolve(tiny_config(probe={"early_fraction": 0.05})))
    assert small.transition_steps.tolist() == list(range(201, 221)) and len(small.state_steps) == 5


def _rows(out) -> list[tuple[int, str, float]]:
    return [tuple(r) for r in runlog.read_jsonl(out / runlog.METRICS_JSONL)]


def _probe_values(rows) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for step, metric, value in rows:
        if metric.startswith("probe."):
            out.setdefault(metric, {})[step] = value
    return out


def test_probe_measures_and_does_not_change_training(tmp_path):
    plain = runs.resolve(probe_config())
    probed = runs.resolve(probe_config(probe=PROBE))
    loop.train(plain, tmp_path / "plain", progress=False)
    loop.train(probed, tmp_path / "probed", progress=False)
    a, b = _rows(tmp_path / "plain"), _rows(tmp_path / "probed")
    assert [r for r in b if not r[1].startswith("probe.")] == a
    probe = _probe_values(b)
    assert sorted(probe) == ["probe.q", "probe.return", "probe.target", "probe.td_error"]
    for values in probe.values():
        # Log steps 400 (the window's last step, where the data is frozen), 500, 600.
        assert sorted(values) == [400, 500, 600]
        assert all(math.isfinite(v) for v in values.values())
    assert min(probe["probe.td_error"].values()) > 0
    # The agent keeps learning, so its Q on the same frozen transitions changes between log steps.
    assert probe["probe.q"][400] != probe["probe.q"][600]


def test_resumed_run_with_probe_is_bit_identical(tmp_path, monkeypatch):
    cfg = runs.resolve(probe_config(probe=PROBE, checkpoint_every=300))
    loop.train(cfg, tmp_path / "runs" / "ref", progress=False)

    out = tmp_path / "runs" / "cut"
    state = train_until_first_checkpoint(cfg, out, monkeypatch)
    # The checkpoint at 300 sits inside the early window: some states saved, the transitions not frozen yet.
    assert len(state["probe"]["states"]) == 2 and state["probe"]["batch"] is None
    loop.train(cfg, out, progress=False)
    ref = (tmp_path / "runs" / "ref" / runlog.METRICS_PARQUET).read_bytes()
    assert (out / runlog.METRICS_PARQUET).read_bytes() == ref
    assert sorted(_probe_values(_rows(out))["probe.return"]) == [400, 500, 600]
