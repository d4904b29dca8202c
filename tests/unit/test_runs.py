"""The run layer: a config validated once against the registries, its typed params carried to the built run."""

from __future__ import annotations

import pytest
import torch

from neuroplastic import config, loop, runs
from neuroplastic.agents.td3 import TD3Params
from neuroplastic.methods.sparse import DynamicParams
from tests.conftest import tiny_config


def test_resolve_carries_typed_params_to_the_run(monkeypatch):
    cfg = runs.resolve(tiny_config(agent={"name": "td3", "hidden": 32}, method={"name": "rigl", "delta": 7}))
    agent, (rigl,) = cfg.typed_params()
    assert isinstance(agent, TD3Params) and agent.hidden == 32
    assert isinstance(rigl, DynamicParams) and rigl.delta == 7
    assert cfg.agent["hidden"] == 32 and cfg.method[0]["delta"] == 7  # the JSON form the run id hashes

    def no_second_validation(*args, **kwargs):
        raise AssertionError("params validated again after resolve")

    monkeypatch.setattr(TD3Params, "model_validate", no_second_validation)
    monkeypatch.setattr(DynamicParams, "model_validate", no_second_validation)
    run = loop.build(cfg, torch.device("cpu"))
    assert run.agent.params == agent and run.methods.methods[0].params.delta == 7
    assert run.agent.params is not cfg.typed_params()[0]  # each run owns its copy


def test_a_config_that_only_has_its_shape_cannot_be_built():
    shaped = config.parse(tiny_config())
    assert shaped.agent == {"name": "td3"}  # shorthands expanded, nothing resolved
    with pytest.raises(config.ConfigError, match=r"runs\.resolve"):
        shaped.typed_params()
