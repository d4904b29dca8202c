"""Figure and table kinds: one registry, one module per kind.

A figure spec (one entry of `figures:` in a workflow config, config/README.md) names a `kind`. Each kind is a
module in `neuroplastic/figures/kinds/` that defines `KIND = FigureKind(...)`: a pydantic `Spec` (its keys,
extra="forbid"), `compute(spec, tables)` (the experiment's tidy tables → figure data: every number drawn, with
its CI) and `render(spec, data)` (figure data → a matplotlib Figure, or a `tables.Table`). Every module there
is registered when this package is imported, in module-name order; nothing else lists the kinds: the workflow
schema defers the figure body to the spec models, the Snakemake rules ask `is_table`, the tests iterate
`KINDS`.

The pipeline (rules figure_data, render_figure/render_table): `parse_spec` → `compute` → `write_data` (CSV,
results/figdata/) → `read_data` → `render_to_files` (PDF+PNG under the committed style, or CSV+Markdown+LaTeX
through the one table writer), byte-identical for the same data. `plan_problems` checks every figure of a plan
before any job runs.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from neuroplastic.figures import draw, kinds, tables
from neuroplastic.figures.base import (
    PLANNER_KEYS,
    AggregateTables,
    FigureError,
    FigureKind,
    FigureSpec,
    NormalizedSpec,
    published_scores,
)

KINDS: dict[str, FigureKind] = {}
# Kind name → the docstring of the module that defines it (what `kinds_markdown` says is drawn).
_KIND_DOCS: dict[str, str] = {}


class FigureSpecError(FigureError):
    """A figure spec that does not validate; `problems` are messages without the figure's name."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def register(kind: FigureKind) -> FigureKind:
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ValueError(f"figure kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> FigureKind:
    if name not in KINDS:
        raise FigureSpecError([f"unknown kind {name!r} (registered kinds: {', '.join(KINDS)})"])
    return KINDS[name]


def is_table(kind: str) -> bool:
    return kind_of(kind).table


def suffixes(kind: str) -> tuple[str, ...]:
    """The files `render_to_files` writes for a kind: .pdf/.png for figures, .csv/.md/.tex for tables."""
    return kind_of(kind).suffixes


def _own_keys(kind: FigureKind) -> list[str]:
    """The kind's keys beyond the common ones, each with its default (`x (required)` without one)."""
    keys = []
    for key, field in kind.spec.model_fields.items():
        if key in FigureSpec.model_fields:
            continue
        default = "required" if field.is_required() else field.get_default(call_default_factory=True)
        default = default.model_dump() if isinstance(default, BaseModel) else default
        keys.append(f"{key}={default!r}" if default != "required" else f"{key} (required)")
    return keys


def describe_kinds() -> str:
    """One line per registered kind: its outputs and its own keys with their defaults (`neuroplastic figures
    kinds`); the keys every kind shares are listed once at the top."""
    common = [k for k in FigureSpec.model_fields if k not in PLANNER_KEYS]
    lines = [f"every kind: {', '.join(common)}"]
    for name, kind in KINDS.items():
        outputs = "+".join(s.lstrip(".") for s in kind.suffixes)
        lines.append(f"{name} ({outputs}): {', '.join(_own_keys(kind)) or '-'}")
    return "\n".join(lines) + "\n"


def _what_is_drawn(kind: FigureKind) -> str:
    """The first paragraph of the kind module's docstring, without its `name:` lead and its figure-data list."""
    doc = _KIND_DOCS.get(kind.name) or importlib.import_module(kind.compute.__module__).__doc__ or ""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    text = text.removeprefix(f"`{kind.name}`:").strip()
    return text.split(" Figure data")[0].replace("|", "\\|")


_FORMAT_NAMES = {".pdf": "PDF", ".png": "PNG", ".csv": "CSV", ".md": "MD", ".tex": "TeX"}


def kinds_markdown() -> str:
    """The figure-kind table of config/README.md (`neuroplastic figures kinds --markdown`), from the registry:
    outputs and keys from each kind's spec model, what is drawn from its module's docstring."""
    lines = ["| kind | output | extra keys (default) | what is drawn |", "|---|---|---|---|"]
    for name, kind in KINDS.items():
        outputs = "+".join(_FORMAT_NAMES[s] for s in kind.suffixes)
        keys = ", ".join(f"`{k}`" for k in _own_keys(kind)) or "-"
        lines.append(f"| `{name}` | {outputs} | {keys} | {_what_is_drawn(kind)} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# specs


def _format_error(kind: str, err: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key {where!r} for kind {kind}"
    if err["type"] == "missing":
        return f"missing key {where!r} for kind {kind}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}"


def parse_spec(raw: dict[str, Any]) -> FigureSpec:
    """A figure spec dict (config entry, optionally with the planner's keys) → its kind's validated model."""
    if not isinstance(raw, dict) or "kind" not in raw:
        raise FigureSpecError(["missing key 'kind'"])
    kind = kind_of(raw["kind"])
    try:
        return kind.spec.model_validate(raw)
    except ValidationError as err:
        raise FigureSpecError([_format_error(kind.name, e) for e in err.errors()]) from None


def load_spec(path: Path) -> FigureSpec:
    """The spec file the workflow writes (results/figspecs/<name>/<figure>.json)."""
    return parse_spec(json.loads(Path(path).read_text()))


def plan_problems(plan: Any) -> list[str]:
    """Everything wrong with the plan's figures ("figures.<name>: ..."), checked before any job runs: the spec
    model of each kind, and the experiment, labels, envs and reference runs it names."""
    problems = []
    for name, raw in plan.config["figures"].items():
        problems += [f"figures.{name}: {p}" for p in _figure_problems(name, raw, plan)]
    return problems


def _figure_problems(name: str, raw: dict[str, Any], plan: Any) -> list[str]:
    problems = [f"key {k!r} is set by the planner, not in a config" for k in PLANNER_KEYS if k in raw]
    if problems:
        return problems
    try:
        spec = parse_spec(json.loads(plan.figure_spec_text(name)))
    except FigureSpecError as err:
        problems += err.problems
        spec = None
    exp = raw.get("experiment")
    experiments = plan.config["experiments"]
    if exp not in experiments:
        return [*problems, f"experiment {exp!r} is not declared (declared: {', '.join(experiments)})"]
    members = plan.experiment_members(exp)
    labels = list(dict.fromkeys(m.label for m in members))
    for label in raw.get("labels") or []:
        if label not in labels:
            problems.append(f"label {label!r} is not a variant of experiment {exp!r} (variants: {', '.join(labels)})")
    envs = experiments[exp]["envs"]
    for env in raw.get("envs") or []:
        if env not in envs:
            problems.append(f"env {env!r} is not in experiment {exp!r} (envs: {', '.join(envs)})")
    if spec is None:
        return problems
    if isinstance(spec, NormalizedSpec) and spec.normalize:
        problems += _reference_problems(spec, plan)
    check = KINDS[spec.kind].check
    if check is not None:
        problems += check(spec, plan)
    return problems


def _reference_problems(spec: NormalizedSpec, plan: Any) -> list[str]:
    ref = spec.reference_runs()
    experiments = plan.config["experiments"]
    if ref.scores:
        envs = spec.envs or experiments[spec.experiment]["envs"]
        return [f"env {env!r} has no {ref.scores} scores" for env in envs if published_scores(ref.scores, env) is None]
    if ref.experiment not in experiments:
        return [f"reference experiment {ref.experiment!r} is not declared"]
    problems = []
    if ref.label not in {m.label for m in plan.experiment_members(ref.experiment)}:
        problems.append(
            f"reference label {ref.label!r} is not a variant of experiment {ref.experiment!r}; "
            "set `reference:` or `normalize: false`"
        )
    ref_envs = experiments[ref.experiment]["envs"]
    for env in spec.envs or experiments[spec.experiment]["envs"]:
        if env not in ref_envs:
            problems.append(f"env {env!r} has no reference runs in experiment {ref.experiment!r}")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# compute and render


def compute(spec: FigureSpec, tables_: AggregateTables | Path) -> pd.DataFrame:
    """Figure data from the aggregated tables (an `AggregateTables`, or the directory holding
    `<experiment>/{curves,final}.parquet`)."""
    if not isinstance(tables_, AggregateTables):
        tables_ = AggregateTables(tables_)
    return kind_of(spec.kind).compute(spec, tables_)


def render_to_files(spec: FigureSpec, data: pd.DataFrame, prefix: Path) -> list[Path]:
    """Draw a figure (PDF + PNG) or write a table (CSV + Markdown + LaTeX) from its data."""
    kind = kind_of(spec.kind)
    if kind.table:
        return tables.write(kind.render(spec, data), data, prefix, spec.title or spec.name)
    pyplot = draw.plt()
    with pyplot.style.context(str(draw.STYLE)):
        fig = kind.render(spec, data)
        if spec.title:
            fig.suptitle(spec.title)
        return draw.save(fig, prefix)


def write_data(data: pd.DataFrame, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")


def read_data(path: Path) -> pd.DataFrame:
    # Empty cells stay empty strings (a table's missing text); a table kind converts its numeric columns.
    return pd.read_csv(path, keep_default_na=False)


def _register_kinds() -> None:
    """Every module of `neuroplastic.figures.kinds` (not starting with `_`) defines one `KIND`."""
    for info in sorted(pkgutil.iter_modules(kinds.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{kinds.__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, FigureKind):
            raise TypeError(f"{module.__name__} defines no `KIND = FigureKind(...)`")
        register(kind)
        _KIND_DOCS[kind.name] = module.__doc__ or ""


_register_kinds()

__all__ = [
    "KINDS",
    "AggregateTables",
    "FigureError",
    "FigureKind",
    "FigureSpec",
    "FigureSpecError",
    "compute",
    "describe_kinds",
    "is_table",
    "kind_of",
    "kinds_markdown",
    "load_spec",
    "parse_spec",
    "plan_problems",
    "read_data",
    "register",
    "render_to_files",
    "suffixes",
    "write_data",
]
