"""The figure registry: every kind has a spec model, compute and render and a test module with an example;
every kind renders byte-identically twice from synthetic tables; the workflow schema and rules name no kind
(they read the registry), so a kind registered at run time is planned and rendered like the built-in ones."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re

import pandas as pd
import pytest
import yaml

from neuroplastic import figures
from neuroplastic.figures import kinds
from neuroplastic.figures.base import FigureKind, FigureSpec
from tests.conftest import REPO
from tests.unit.figures.synthetic import STATS

BUILTIN = {
    "curves",
    "final_bars",
    "score_vs_param",
    "aggregate_intervals",
    "performance_profile",
    "probability_of_improvement",
    "cycling",
    "final_table",
    "aggregate_table",
    "switch_table",
    "reference_table",
}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registry_holds_every_kind_with_spec_compute_render():
    assert set(figures.KINDS) >= BUILTIN
    for name, kind in figures.KINDS.items():
        assert kind.name == name
        assert issubclass(kind.spec, FigureSpec) and kind.spec.model_config.get("extra") == "forbid"
        assert callable(kind.compute) and callable(kind.render)
        assert kind.suffixes == ((".csv", ".md", ".tex") if kind.table else (".pdf", ".png"))
    assert {k for k, v in figures.KINDS.items() if v.table} >= {"final_table", "aggregate_table", "switch_table"}
    # Registered = every module of figures/kinds/ (a new kind is one new module there).
    modules = {m.name for m in pkgutil.iter_modules(kinds.__path__) if not m.name.startswith("_")}
    assert modules == set(figures.KINDS)


def _example_module(kind: str):
    try:
        return importlib.import_module(f"tests.unit.figures.test_{kind}")
    except ModuleNotFoundError:
        pytest.fail(f"figure kind {kind!r} has no test module tests/unit/figures/test_{kind}.py with an EXAMPLE spec")


@pytest.mark.parametrize("kind", sorted(figures.KINDS))
def test_every_kind_renders_byte_identically(kind, aggregates, tmp_path):
    module = _example_module(kind)
    root = aggregates
    if hasattr(module, "write_example_tables"):  # a kind whose example needs tables of its own
        root = module.write_example_tables(tmp_path / "aggregates")
    spec = figures.parse_spec({"name": f"fig_{kind}", "stats": STATS, "palette": {"NE": "#d62728"}, **module.EXAMPLE})
    assert spec.kind == kind
    data = figures.compute(spec, root)
    assert len(data) > 0
    figures.write_data(data, tmp_path / "data.csv")
    first = figures.render_to_files(spec, figures.read_data(tmp_path / "data.csv"), tmp_path / "a" / spec.name)
    second = figures.render_to_files(spec, figures.read_data(tmp_path / "data.csv"), tmp_path / "b" / spec.name)
    assert tuple(p.suffix for p in first) == figures.suffixes(kind)
    for p, q in zip(first, second, strict=True):
        assert p.stat().st_size > (0 if figures.is_table(kind) else 1000)
        assert _sha(p) == _sha(q), f"{p.name} differs between two renders"
    if not figures.is_table(kind):
        pdf = first[0].read_bytes()
        assert b"CreationDate" not in pdf and b"ModDate" not in pdf
    # Statistics are seeded: computing the data again gives the same table.
    pd.testing.assert_frame_equal(data, figures.compute(spec, root))


def test_schema_and_rules_name_no_kind():
    """The kind list lives in the registry only: the schema, the rules and the Snakefile never spell a kind
    (`curves` is also the name of an aggregated table, which the rules do name)."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    figure = schema["$defs"]["figure"]
    assert "enum" not in figure["properties"]["kind"] and figure.get("additionalProperties", True) is True
    files = [REPO / "workflow" / "schemas" / "config.schema.yaml", REPO / "Snakefile"]
    files += sorted((REPO / "workflow" / "rules").glob("*.smk"))
    for path in files:
        text = path.read_text()
        named = [k for k in figures.KINDS if k != "curves" and re.search(rf"\b{k}\b", text)]
        assert not named, f"{path.relative_to(REPO)} names figure kinds {named}; read them from neuroplastic.figures"


def _plan_config(figs: dict) -> dict:
    return {
        "name": "t",
        "run": {"agent": "td3", "steps": 600, "start_steps": 200, "eval_every": 300, "checkpoint_every": 0},
        "experiments": {"main": {"envs": ["Hopper-v4"], "seeds": 1, "variants": [{"label": "TD3"}, {"label": "NE2"}]}},
        "figures": figs,
    }


@pytest.fixture
def extra_kind():
    """A kind registered at run time: a table of run counts per variant, with one key of its own."""

    class Spec(FigureSpec):
        header: str = "runs"

    def compute(spec, tables):
        final = tables.final(spec.experiment)
        return final.groupby("label", sort=False).size().rename("runs").reset_index()

    def render(spec, data):
        rows = [[r.label, str(r.runs)] for r in data.itertuples()]
        return figures.tables.Table(head=["method", spec.header], rows=rows, caption="runs per variant")

    kind = figures.register(FigureKind("run_count_table", Spec, compute, render, table=True))
    yield kind
    del figures.KINDS[kind.name]


def test_a_kind_registered_at_run_time_is_planned_and_rendered(extra_kind, tmp_path):
    from neuroplastic.experiments import WorkflowConfigError, plan_from_dict

    plan = plan_from_dict(_plan_config({"counts": {"kind": "run_count_table", "experiment": "main", "header": "n"}}))
    assert figures.is_table(plan.config["figures"]["counts"]["kind"])
    with pytest.raises(WorkflowConfigError, match=r"figures\.counts: unknown key 'headr' for kind run_count_table"):
        plan_from_dict(_plan_config({"counts": {"kind": "run_count_table", "experiment": "main", "headr": "n"}}))
    final = pd.DataFrame({"label": ["TD3", "TD3", "NE2"], "metric": "eval_return", "value": [1.0, 2.0, 3.0]})
    spec = figures.parse_spec({"kind": "run_count_table", "experiment": "main", "header": "n", "name": "counts"})
    data = figures.compute(spec, figures.AggregateTables(frames={"main": (final, final)}))
    files = figures.render_to_files(spec, data, tmp_path / "counts")
    assert (tmp_path / "counts.md").read_text().endswith("| method | n |\n|---|---|\n| TD3 | 2 |\n| NE2 | 1 |\n")
    assert [f.suffix for f in files] == [".csv", ".md", ".tex"]


def test_spec_errors_name_the_figure_and_the_key():
    from neuroplastic.experiments import WorkflowConfigError, plan_from_dict

    figs = {
        "main_returns": {"kind": "curves", "experiment": "main", "metricz": ["eval_return"]},
        "bars": {"kind": "final_bars", "experiment": "main", "normalize": "sometimes"},
        "poi": {"kind": "probability_of_improvement", "experiment": "main"},
        "odd": {"kind": "histogram", "experiment": "main"},
        "named": {"kind": "curves", "experiment": "main", "stats": {}},
    }
    with pytest.raises(WorkflowConfigError) as err:
        plan_from_dict(_plan_config(figs))
    msg = str(err.value)
    assert "figures.main_returns: unknown key 'metricz' for kind curves" in msg
    assert "figures.bars: normalize: Input should be a valid boolean" in msg
    assert "figures.poi: missing key 'target' for kind probability_of_improvement" in msg
    assert "figures.odd: unknown kind 'histogram' (registered kinds: " in msg and "switch_table" in msg
    assert "figures.named: key 'stats' is set by the planner" in msg


def test_figures_kinds_lists_every_kind_with_its_keys():
    from tests.workflow.helpers import neuroplastic

    proc = neuroplastic("figures", "kinds")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("every kind: kind, experiment, title, caption, labels, envs")
    assert [line.split(" ", 1)[0] for line in lines[1:]] == list(figures.KINDS)
    svp = next(line for line in lines if line.startswith("score_vs_param "))
    assert "(pdf+png)" in svp and "x (required)" in svp and "statistic='iqm'" in svp
    profile = next(line for line in lines if line.startswith("performance_profile "))
    assert "tau={'min': None, 'max': None, 'num': 101}" in profile
    assert "(csv+md+tex)" in next(line for line in lines if line.startswith("switch_table "))
