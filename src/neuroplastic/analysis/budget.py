"""Which experiments of a config fit a budget of CPU- or GPU-hours, given an estimate (`estimate.estimate`), and
the overlay that runs just those. Torch-free, so that the CLI's parser can offer `ORDERS` without importing the
estimate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuroplastic.experiments import Plan


def hours_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


ORDERS = ("paper", "cheapest")


def plan_budget(plan: Plan, est: dict[str, Any], unit: str, budget_h: float, order: str = "paper") -> dict[str, Any]:
    """Which experiments of the config fit `budget_h` hours of `unit` ("cpu" or "gpu").

    Order `paper`: the config's own order (config/paper.yaml lists the NE paper's main results first); `cheapest`:
    by each experiment's own cost, ascending. Walking that order, an experiment is kept when the runs it adds to
    those already kept (runs shared between experiments cost once) still fit; one that does not fit is skipped
    and the walk goes on, so a cheaper later one may still fit. An experiment with a run of no rate cannot be
    costed and is never kept."""
    if unit not in ("cpu", "gpu"):
        raise ValueError(f"budget unit must be cpu or gpu, got {unit!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if not budget_h > 0:
        raise ValueError(f"--{unit}-hours must be positive, got {budget_h}")
    per_run = est["_per_run"]
    key = unit + "_h"
    names = list(plan.config["experiments"])
    own = {n: est["experiments"][n][key] for n in names}
    if order == "cheapest":
        names.sort(key=lambda n: (own[n] is None, own[n] or 0.0))
    kept_runs: set[str] = set()
    spent = 0.0
    rows = []
    for name in names:
        rids = plan.experiment_run_ids(name)
        new = [r for r in rids if r not in kept_runs]
        costs = [per_run[r][key] for r in new]
        row: dict[str, Any] = {"experiment": name, "runs": len(rids), "new_runs": len(new), "own_h": own[name]}
        if any(c is None for c in costs):
            row.update(added_h=None, cumulative_h=None, fits=False, why="no rate for some of its runs")
        else:
            added = sum(costs)  # type: ignore[arg-type]
            fits = spent + added <= budget_h
            if fits:
                spent += added
                kept_runs.update(new)
            row.update(
                added_h=added,
                cumulative_h=spent if fits else None,
                fits=fits,
                why="" if fits else f"needs {added:.1f} h, {budget_h - spent:.1f} h left",
            )
        rows.append(row)
    kept = [r["experiment"] for r in rows if r["fits"]]
    return {
        "unit": unit,
        "budget_h": budget_h,
        "order": order,
        "rows": rows,
        "kept": kept,
        "kept_runs": len(kept_runs),
        "spent_h": spent,
    }


def subset_overlay(configfile: str | Path, kept: list[str], overlay_path: str | Path | None = None) -> str:
    """The overlay that runs just `kept` of `configfile` (config/README.md, "Overlays"): `include` is relative to
    where the overlay is saved (default: beside the config)."""
    configfile = Path(configfile).resolve()
    where = Path(overlay_path).resolve().parent if overlay_path else configfile.parent
    include = os.path.relpath(configfile, where)
    names = ", ".join(kept)
    return f"include: {include}\nexperiments_only: [{names}]\n"


def format_budget(budget: dict[str, Any], overlay_text: str, overlay_path: str | None) -> str:
    unit = budget["unit"].upper()
    lines = [
        "",
        f"within {budget['budget_h']:g} {unit}-hours, experiments in {budget['order']} order "
        + (
            "(the config's own order: the paper's main results first)"
            if budget["order"] == "paper"
            else "(cheapest first)"
        )
        + "; runs shared with an experiment already kept cost nothing again:",
        f"  {'':<6}{'experiment':<28}{'runs':>6}{'new':>6}{unit + '-h':>11}{'cumulative':>12}",
    ]
    for r in budget["rows"]:
        mark = "fits" if r["fits"] else "-"
        cumulative = "" if r["cumulative_h"] is None else f"{r['cumulative_h']:.1f}"
        lines.append(
            f"  {mark:<6}{r['experiment']:<28}{r['runs']:>6}{r['new_runs']:>6}{hours_text(r['added_h']):>11}"
            f"{cumulative:>12}" + (f"  ({r['why']})" if r["why"] else "")
        )
    lines.append(
        f"kept: {len(budget['kept'])} experiments, {budget['kept_runs']} runs, {budget['spent_h']:.1f} {unit}-hours"
    )
    if not budget["kept"]:
        lines.append("nothing fits: no overlay to run")
        return "\n".join(lines) + "\n"
    where = f"written to {overlay_path}" if overlay_path else "save it beside the config, e.g. config/subset.yaml"
    lines.append(f"overlay that runs just these ({where}):")
    lines += ["    " + line for line in overlay_text.splitlines()]
    lines.append(f"  snakemake --profile workflow/profiles/local --configfile {overlay_path or '<that file>'}")
    return "\n".join(lines) + "\n"
