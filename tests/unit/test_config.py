from __future__ import annotations

import json

import pytest

from neuroplastic import config, runs
from tests.conftest import tiny_config


def test_shorthands_resolve_to_full_entries():
    cfg = runs.resolve(tiny_config(method={"name": "none"}))
    assert cfg.agent["name"] == "td3"
    assert cfg.agent["batch_size"] == 256 and cfg.agent["critic"] == "td3"
    assert cfg.method == []


def test_run_id_ignores_spelled_out_defaults():
    a = runs.resolve(tiny_config())
    b = runs.resolve(tiny_config(agent={"name": "td3", "lr": 3e-4, "critic": "td3"}, method=None))
    c = runs.resolve(tiny_config(seed=1))
    assert config.run_id(a) == config.run_id(b)
    assert config.run_id(a) != config.run_id(c)
    assert len(config.run_id(a)) == 12


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"stepz": 5}, "stepz: unknown key"),
        ({"steps": "many"}, "steps:"),
        ({"steps": -1}, "steps:"),
        ({"env": "Hopper-v9"}, "env: unknown env 'Hopper-v9'"),
        ({"agent": "a2c"}, "agent.name: unknown agent 'a2c'"),
        ({"agent": {"name": "td3", "critc": "ne"}}, "agent.critc: unknown key"),
        ({"agent": {"name": "td3", "critic": "wide"}}, "agent.critic:"),
        ({"method": {"name": "magic"}}, "method[0].name: unknown method 'magic'"),
        ({"method": [{"lr": 1}]}, "method[0].name: required key is missing"),
    ],
)
def test_bad_configs_name_the_key(override, needle):
    with pytest.raises(config.ConfigError) as err:
        runs.resolve(tiny_config(**override))
    assert needle in str(err.value)


def test_missing_required_key():
    data = tiny_config()
    del data["steps"]
    with pytest.raises(config.ConfigError, match="steps: required key is missing"):
        runs.resolve(data)


def test_load_yaml_and_json(tmp_path):
    j = tmp_path / "c.json"
    j.write_text(json.dumps(tiny_config()))
    y = tmp_path / "c.yaml"
    y.write_text("agent: td3\nenv: Hopper-v4\nsteps: 600\nstart_steps: 200\neval_every: 300\n")
    assert runs.load(j).env == "Hopper-v4"
    assert runs.load(y).steps == 600
    with pytest.raises(config.ConfigError, match="not found"):
        runs.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent: [td3\n")
    with pytest.raises(config.ConfigError, match="cannot parse"):
        runs.load(bad)
