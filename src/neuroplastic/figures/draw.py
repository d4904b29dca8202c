"""Drawing helpers shared by the figure kinds, and the one way a figure is saved.

Figures are drawn with the Agg backend under the committed style (`neuroplastic.mplstyle`) and saved without
timestamps or software versions in their metadata, so the same figure data always gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = Path(__file__).with_name("neuroplastic.mplstyle")
PALETTE = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
LINESTYLES = ["-", "--", ":", "-."]
STATISTIC_NAMES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}


def plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as pyplot

    return pyplot


def colors(groups: list[str], palette: dict[str, str]) -> dict[str, str]:
    """A colour per group: the config's palette by group (or by the label before a sweep's `[...]`), then the
    default palette's unused colours in order."""
    out: dict[str, str] = {}
    free = [c for c in PALETTE if c not in palette.values()]
    i = 0
    for g in groups:
        base = g.split("[", 1)[0]
        if g in palette:
            out[g] = palette[g]
        elif base in palette and base not in out.values():
            out[g] = palette[base]
        else:
            out[g] = free[i % len(free)] if free else PALETTE[i % len(PALETTE)]
            i += 1
    return out


def step_axis(max_step: float, what: str = "env steps") -> tuple[float, str]:
    """Scale and axis label for a step axis (M or k steps)."""
    if max_step >= 1e6:
        return 1e6, f"{what} (M)"
    if max_step >= 1e3:
        return 1e3, f"{what} (k)"
    return 1.0, what


def legend(fig: Any, handles: list[Any], labels: list[str], ncol: int) -> None:
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(ncol, 6), bbox_to_anchor=(0.5, 0.0))


def top_margin(title: str | None) -> float:
    """Upper edge of the tight layout: room for the suptitle when there is one."""
    return 0.93 if title else 1.0


def save(fig: Any, prefix: Path) -> list[Path]:
    """PDF + PNG without timestamps; the same figure always gives the same bytes."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = prefix.with_suffix(".pdf"), prefix.with_suffix(".png")
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "neuroplastic"})
    fig.savefig(png, metadata={"Software": None})
    plt().close(fig)
    return [pdf, png]
