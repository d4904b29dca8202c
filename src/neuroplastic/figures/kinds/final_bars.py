"""`final_bars`: final score per env (mean over seeds, bootstrap CI) as bars per variant, plus a panel with the
IQM of normalised scores over envs when `normalize`. Figure data: [env, group, statistic, point, ci_low,
ci_high, runs]; the aggregate panel's env is `AGGREGATE_LABEL`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from neuroplastic.analysis import stats
from neuroplastic.figures import draw
from neuroplastic.figures.base import AggregateTables, FigureKind, NormalizedSpec, final_scores

if TYPE_CHECKING:
    from matplotlib.figure import Figure

AGGREGATE_LABEL = "IQM (normalised)"


class Spec(NormalizedSpec):
    normalize: bool = True


def per_env_means(spec: NormalizedSpec, scores: dict[str, np.ndarray], envs: list[str]) -> list[pd.DataFrame]:
    """Mean over seeds with its CI, per env and variant (columns of the (runs, envs) score matrices)."""
    st = spec.stats
    return [
        stats.interval_estimates(
            {v: x[:, [i]] for v, x in scores.items()}, ["mean"], st.reps, st.confidence, st.seed
        ).assign(env=env)
        for i, env in enumerate(envs)
    ]


def compute(spec: Spec, tables: AggregateTables) -> pd.DataFrame:
    fs = final_scores(spec, tables, spec.metric, spec.normalize)
    frames = per_env_means(spec, fs.raw, fs.envs)
    if spec.normalize:
        st = spec.stats
        iqm = stats.interval_estimates(fs.scores, ["iqm"], st.reps, st.confidence, st.seed)
        frames.append(iqm.assign(env=AGGREGATE_LABEL))
    out = pd.concat(frames, ignore_index=True)
    return out[["env", "group", "statistic", "point", "ci_low", "ci_high", "runs"]]


def render(spec: Spec, data: pd.DataFrame) -> Figure:
    plt = draw.plt()
    envs = list(pd.unique(data["env"]))
    groups = list(pd.unique(data["group"]))
    colors = draw.colors(groups, spec.palette)
    fig, axes = plt.subplots(1, len(envs), figsize=(max(2.4, 0.45 * len(groups) + 1.0) * len(envs), 2.8), squeeze=False)
    for c, env in enumerate(envs):
        ax = axes[0][c]
        d = data[data["env"] == env].set_index("group").reindex(groups)
        pos = np.arange(len(groups))
        err = np.vstack([d["point"] - d["ci_low"], d["ci_high"] - d["point"]])
        ax.bar(pos, d["point"], yerr=err, color=[colors[g] for g in groups], capsize=2, error_kw={"linewidth": 0.8})
        ax.set_xticks(pos, groups, rotation=45, ha="right")
        ax.set_title(env)
        if c == 0:
            ax.set_ylabel(spec.ylabel or f"final {spec.metric}")
    fig.tight_layout(rect=(0, 0, 1, draw.top_margin(spec.title)))
    return fig


KIND = FigureKind("final_bars", Spec, compute, render)
