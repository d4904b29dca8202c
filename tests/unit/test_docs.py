"""Docs that restate code are generated from it or checked against it here, so they cannot drift: the figure-kind
table of config/README.md, the overlay key lists there and its example of a bad experiment `defaults:`, and
docs/methods.md's table of NE defaults and its table of methods' `capture` values."""

from __future__ import annotations

import re

import pytest
import yaml
from pydantic import BaseModel

from neuroplastic import figures, overlay
from neuroplastic.methods import METHODS
from neuroplastic.methods.ne import NE, NEParams
from tests.conftest import REPO

README = (REPO / "config" / "README.md").read_text()
METHODS_MD = (REPO / "docs" / "methods.md").read_text()


def _table_after(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with `header` (separator row dropped)."""
    lines = text[text.index(header) :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_readme_figure_kind_table_is_the_generated_one():
    begin = README.index("<!-- figure kinds: begin")
    block = README[README.index("\n", begin) + 1 : README.index("<!-- figure kinds: end -->")]
    assert block == figures.kinds_markdown(), "regenerate with `neuroplastic figures kinds --markdown`"
    assert [row[0] for row in _table_after(block, "| kind |")] == [f"`{k}`" for k in figures.KINDS]


def test_readme_overlay_keys_are_the_loaders():
    rows = {row[0]: row[1] for row in _table_after(README, "| overlay key | merge |")}
    top = [n for key in rows if not key.startswith("`…") and not key.startswith("`experiments.") for n in _names(key)]
    assert sorted(n for n in top if "." not in n) == sorted(overlay.TOP_KEYS)
    experiment = [n.removeprefix("…") for key in rows if key.startswith("`…") for n in _names(key)]
    assert sorted(experiment) == sorted(overlay.EXPERIMENT_KEYS)
    run = rows["`run`"]
    listed = run[run.index("only") :]
    assert re.findall(r"`(\w+)`(?! \()", re.sub(r"\([^)]*\)", "", listed)) == list(overlay.RUN_KEYS)
    assert _names(listed[listed.index("`env_options`") :].split(")")[0])[1:] == list(overlay.ENV_OPTION_KEYS)
    assert _names(listed[listed.index("`cycle`") :].split(")")[0])[1:] == list(overlay.CYCLE_KEYS)
    agent = rows["`run.agent`"]
    assert _names(agent.split("(PPO")[0]) == list(overlay.AGENT_KEYS)


def test_readme_defaults_error_example_is_what_the_loader_says():
    experiment_keys = README[README.index("### An experiment") :]
    row = {row[0]: row[2] for row in _table_after(experiment_keys, "| key | default | meaning |")}
    example = re.search(r"e\.g\. `([^`]+)`", row["`defaults`"]).group(1)
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    methods = paper["experiments"]["sparse_ppo"]["defaults"]["method_params"]
    methods["sett"] = methods.pop("set")
    with pytest.raises(overlay.WorkflowConfigError) as err:
        overlay.expand_defaults(paper)
    assert example in [line.strip() for line in str(err.value).splitlines()[1:]]


def _doc_value(text: str) -> str:
    # `(growing | static | dense)`: the default first; `(null → 2Δ/T_end)`: what null means after the arrow.
    return text.replace("\\|", "|").split(" | ")[0].split(" → ")[0].strip()


def _documents(text: str, value: object) -> bool:
    if value is None or isinstance(value, bool):
        return text == str(value).lower().replace("none", "null")
    if isinstance(value, int | float):
        return float(text) == value
    return text == str(value)


def test_methods_md_lists_every_ne_default():
    rows = {row[0]: row[1] for row in _table_after(METHODS_MD, "| level | keys (defaults of `ne`")}
    models: dict[str, type[BaseModel]] = {"top": NEParams}
    for level, field in NEParams.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            models[f"`{level}:`"] = field.annotation
    assert set(rows) == set(models)
    for level, model in models.items():
        documented = dict(re.findall(r"`(\w+)` \(((?:[^()]|\([^)]*\))*)\)", rows[level]))
        own = {k: f for k, f in model.model_fields.items() if level != "top" or f"`{k}:`" not in models}
        assert sorted(documented) == sorted(own), level
        defaults = model()
        for key, text in documented.items():
            assert _documents(_doc_value(text), getattr(defaults, key)), f"{level} {key}: documented {text!r}"


def test_methods_md_capture_table_holds_every_method_that_is_not_in_place():
    """The table states each listed method's `capture` right, and lists every method that does not keep the
    default (`in_place`, which a new method gets without a row)."""
    rows = _table_after(METHODS_MD, "| method | `capture` | events |")
    documented: dict[str, str] = {}
    for names, capture, _ in rows:
        for name in _names(names):
            documented[name] = capture.strip("`")
    for name, capture in documented.items():
        assert name in METHODS, f"docs/methods.md: the capture table lists {name!r}, which is no method"
        assert capture == METHODS[name].capture, f"docs/methods.md: {name!r} has capture {METHODS[name].capture!r}"
    for name, cls in METHODS.items():
        # NE's presets and ablations are listed as "`ne` (and presets)".
        key = name if name in documented or not issubclass(cls, NE) else "ne"
        assert cls.capture == "in_place" or key in documented, f"docs/methods.md: {name!r} is missing from the table"
