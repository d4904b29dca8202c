"""What every figure kind shares: the spec base models, the kind record, the aggregated tables a kind reads,
and the selection/normalisation helpers of the final-score kinds.

A figure spec is one entry of `figures:` in a workflow config plus the keys the planner adds
(`Plan.figure_spec_text`: name, config_name, stats, variant_order, palette). Each kind's `Spec` extends
`FigureSpec` with its own keys; unknown keys are errors (extra="forbid").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from neuroplastic import atari
from neuroplastic.analysis import stats

Statistic = Literal["iqm", "mean", "median", "optimality_gap"]
# The keys `Plan.figure_spec_text` adds to a config's figure entry; a config may not set them itself.
PLANNER_KEYS = ("name", "config_name", "stats", "variant_order", "palette")


class FigureError(ValueError):
    """A figure that cannot be computed or drawn from the given tables; the message names what is missing."""


def published_scores(name: str, env: str) -> tuple[float, float] | None:
    """(low, high) of `env` in the published table `name` (Atari: random and human score), None if absent."""
    if name == "atari_human_random" and atari.is_atari_id(env):
        return atari.human_random_scores().get(atari.snake_case(atari.game_of(env)))
    return None


class Reference(BaseModel):
    """What a kind normalises by: the mean final score of `label` per env in `experiment` (null = own), or,
    with `scores`, a published (low, high) pair per env: (x − low)/(high − low), e.g. Atari's human-normalised
    score (x − random)/(human − random)."""

    model_config = ConfigDict(extra="forbid")
    experiment: str | None = None
    label: str = "TD3"
    scores: Literal["atari_human_random"] | None = None


class StatsSettings(BaseModel):
    """The workflow's `stats:` section (validated by the workflow schema; copied into every figure spec)."""

    # The workflow schema owns this section's keys; a key added there must not break figure parsing.
    model_config = ConfigDict(extra="ignore")
    seed: int = 0
    reps: int = 50000
    curve_reps: int = 2000
    profile_reps: int = 2000
    confidence: float = 0.95
    final_fraction: float = 0.1
    reference: Reference = Field(default_factory=Reference)


class FigureSpec(BaseModel):
    """Keys common to every kind (see config/README.md) and the keys the planner adds."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    experiment: str
    title: str | None = None
    caption: str = ""
    labels: list[str] | None = Field(default=None, min_length=1)
    envs: list[str] | None = Field(default=None, min_length=1)
    xlabel: str | None = None
    ylabel: str | None = None
    # added by the planner
    name: str = ""
    config_name: str = ""
    stats: StatsSettings = Field(default_factory=StatsSettings)
    variant_order: list[str] = Field(default_factory=list)
    palette: dict[str, str] = Field(default_factory=dict)


class NormalizedSpec(FigureSpec):
    """A kind of final scores that may be divided by a reference's mean per env (`normalize`, `reference`).
    Subclasses set the default of `normalize`; the plan checks the reference runs exist when it is on."""

    metric: str = "eval_return"
    normalize: bool = True
    reference: Reference | None = None

    def reference_runs(self) -> Reference:
        """The figure's `reference` replaces `stats.reference`; experiment null = the figure's own."""
        ref = self.reference or self.stats.reference
        return Reference(experiment=ref.experiment or self.experiment, label=ref.label, scores=ref.scores)


@dataclass(frozen=True)
class FigureKind:
    """One kind: its spec model, `compute` (tables → every drawn number, with CIs) and `render` (figure data →
    a matplotlib Figure, or a `tables.Table` when `table`). `check` adds plan-time problems the spec model
    cannot see (tags of variants, envs of the experiment); it returns messages without the figure's name."""

    name: str
    spec: type[FigureSpec]
    compute: Callable[[Any, AggregateTables], pd.DataFrame]
    render: Callable[[Any, pd.DataFrame], Any]
    table: bool = False
    check: Callable[[Any, Any], list[str]] | None = None

    TABLE_SUFFIXES: ClassVar[tuple[str, ...]] = (".csv", ".md", ".tex")
    FIGURE_SUFFIXES: ClassVar[tuple[str, ...]] = (".pdf", ".png")

    @property
    def suffixes(self) -> tuple[str, ...]:
        return self.TABLE_SUFFIXES if self.table else self.FIGURE_SUFFIXES


# ---------------------------------------------------------------------------------------------------------------
# the aggregated tables a kind reads


class AggregateTables:
    """The tidy `curves` and `final` tables of each experiment (aggregate.py), loaded on first use from
    `<root>/<experiment>/{curves,final}.parquet`, or given as frames (tests)."""

    def __init__(self, root: Path | None = None, frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None):
        self.root = Path(root) if root is not None else None
        self._frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = dict(frames or {})

    def _load(self, experiment: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        if experiment not in self._frames:
            if self.root is None:
                raise FigureError(f"no aggregated tables for experiment {experiment!r}")
            base = self.root / experiment
            try:
                self._frames[experiment] = (
                    pd.read_parquet(base / "curves.parquet"),
                    pd.read_parquet(base / "final.parquet"),
                )
            except FileNotFoundError as err:
                msg = f"aggregated tables for experiment {experiment!r} not found under {base}: {err}"
                raise FigureError(msg) from None
        return self._frames[experiment]

    def curves(self, experiment: str) -> pd.DataFrame:
        return self._load(experiment)[0]

    def final(self, experiment: str) -> pd.DataFrame:
        return self._load(experiment)[1]


def declared_order(spec: FigureSpec, df: pd.DataFrame) -> pd.DataFrame:
    """Rows with variants in the experiment's declaration order (the aggregate sorts rows by label)."""
    rank = {v: i for i, v in enumerate(spec.variant_order)}
    return df.assign(_r=df["variant"].map(rank)).sort_values(["_r", "env", "seed"], kind="stable").drop(columns="_r")


def own_curves(spec: FigureSpec, tables: AggregateTables) -> pd.DataFrame:
    return declared_order(spec, tables.curves(spec.experiment))


def own_final(spec: FigureSpec, tables: AggregateTables) -> pd.DataFrame:
    return declared_order(spec, tables.final(spec.experiment))


def selection(spec: FigureSpec, df: pd.DataFrame) -> tuple[list[str], list[str], pd.DataFrame]:
    """Variants (in declaration order, filtered by `labels`) and envs of the figure; rows restricted to them."""
    if spec.labels:
        order = {label: i for i, label in enumerate(spec.labels)}
        df = df[df["label"].isin(order)]
    else:
        order = {label: i for i, label in enumerate(pd.unique(df["label"]))}
    variants = (
        df[["label", "variant"]]
        .drop_duplicates()
        .assign(_o=lambda d: d["label"].map(order))
        .sort_values(["_o"], kind="stable")["variant"]
        .tolist()
    )
    envs = spec.envs or list(pd.unique(df["env"]))
    return variants, envs, df[df["env"].isin(envs)]


def check_metric(df: pd.DataFrame, metric: str, experiment: str) -> None:
    if metric not in set(df["metric"]):
        known = ", ".join(sorted(set(df["metric"])))
        raise FigureError(
            f"metric {metric!r} was not logged by the runs of experiment {experiment!r} (logged: {known})"
        )


def label_of(df: pd.DataFrame, variant: str) -> str:
    return str(df.loc[df["variant"] == variant, "label"].iloc[0])


@dataclass
class FinalScores:
    """Final scores of the figure's variants: raw and (when the spec normalises) normalised, (runs, envs) each."""

    variants: list[str]
    envs: list[str]
    rows: pd.DataFrame  # the selected rows of the final table
    raw: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]  # normalised when the spec says so, else `raw`


def final_scores(spec: FigureSpec, tables: AggregateTables, metric: str, normalize: bool = False) -> FinalScores:
    final = own_final(spec, tables)
    check_metric(final, metric, spec.experiment)
    variants, envs, sel = selection(spec, final)
    raw = stats.score_matrices(sel, variants, envs, metric)
    scores = raw
    if normalize:
        assert isinstance(spec, NormalizedSpec)
        ref = spec.reference_runs()
        if ref.scores:
            bounds = np.array([published_scores(ref.scores, env) for env in envs], dtype=np.float64)  # (E, 2)
            low, span = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
            scores = {k: (v - low.reshape(1, -1)) / span.reshape(1, -1) for k, v in raw.items()}
        else:
            ref_means = stats.reference_means(tables.final(ref.experiment), ref.label, envs, metric)
            scores = stats.normalise(raw, ref_means, envs)
    return FinalScores(variants, envs, sel, raw, scores)


def curve_frame(
    cell: pd.DataFrame, metric: str, env: str, group: str, statistic: str, st: StatsSettings
) -> pd.DataFrame:
    """One variant's curve of one metric on one env: the statistic over seeds per logged step, with a seeded
    bootstrap CI [metric, env, group, step, point, ci_low, ci_high]. Every seed must log the same steps."""
    wide = cell.pivot_table(index="seed", columns="step", values="value", aggfunc="first")
    if wide.isna().any().any():
        bad = sorted(cell.loc[cell["seed"].isin(wide.index[wide.isna().any(axis=1)]), "run_id"].unique())
        raise FigureError(f"{metric} on {env}, {group}: runs log different steps ({', '.join(bad)})")
    x = wide.to_numpy(dtype=np.float64)[:, None, :]
    point, ci = stats.curve_estimates({group: x}, statistic, st.curve_reps, st.confidence, st.seed)[group]
    return pd.DataFrame(
        {
            "metric": metric,
            "env": env,
            "group": group,
            "step": wide.columns.to_numpy(dtype=np.int64),
            "point": point,
            "ci_low": ci[0],
            "ci_high": ci[1],
        }
    )
