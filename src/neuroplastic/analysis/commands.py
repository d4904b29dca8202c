"""CLI subcommands for the workflow: `neuroplastic plan|aggregate|figures|estimate` (wired in cli.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from neuroplastic.analysis.budget import ORDERS as BUDGET_ORDERS
from neuroplastic.analysis.budget import format_budget, plan_budget, subset_overlay


def _fail(msg: str, code: int = 2) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def cmd_plan(args: argparse.Namespace) -> int:
    from neuroplastic.experiments import WorkflowConfigError, plan_from_file

    try:
        plan = plan_from_file(args.configfile, schema_path=args.schema)
    except WorkflowConfigError as err:
        return _fail(str(err))
    if args.experiment_table:
        if args.experiment_table not in plan.config["experiments"]:
            return _fail(f"experiment {args.experiment_table!r} is not declared in {args.configfile}")
        print(plan.experiment_table_text(args.experiment_table), end="")
        return 0
    if args.tables_dir:
        tables = Path(args.tables_dir)
        tables.mkdir(parents=True, exist_ok=True)
        for experiment in plan.config["experiments"]:
            text = plan.experiment_table_text(experiment)
            (tables / f"{experiment}.json").write_text(text)
            print(f"{tables / experiment}.json: {len(plan.experiment_members(experiment))} members, {len(text)} bytes")
        return 0
    out = {
        "name": plan.name,
        "runs": len(plan.runs),
        "experiments": {e: len(plan.experiment_run_ids(e)) for e in plan.config["experiments"]},
        "figures": sorted(plan.config["figures"]),
    }
    if args.members:
        out["members"] = [m.as_row() for m in plan.members]
    print(json.dumps(out, indent=2))
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from neuroplastic.analysis import aggregate

    try:
        aggregate.run(Path(args.table), Path(args.runs), Path(args.out), args.final_fraction)
    except aggregate.AggregationError as err:
        return _fail(str(err), 1)
    return 0


def cmd_figure_data(args: argparse.Namespace) -> int:
    from neuroplastic import figures
    from neuroplastic.analysis import stats

    spec = figures.load_spec(Path(args.spec))
    try:
        data = figures.compute(spec, Path(args.aggregates))
    except (figures.FigureError, stats.StatsError) as err:
        return _fail(f"figure {spec.name!r}: {err}", 1)
    figures.write_data(data, Path(args.out))
    return 0


def cmd_figure_render(args: argparse.Namespace) -> int:
    from neuroplastic import figures

    spec = figures.load_spec(Path(args.spec))
    data = figures.read_data(Path(args.data))
    figures.render_to_files(spec, data, Path(args.out))
    return 0


def cmd_figure_kinds(args: argparse.Namespace) -> int:
    from neuroplastic import figures

    print(figures.kinds_markdown() if args.markdown else figures.describe_kinds(), end="")
    return 0


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(directory: Path, files: list[Path] | None = None) -> Path:
    """MANIFEST.json: every file under `directory` (or the given ones) with its sha256 and size."""
    directory = Path(directory)
    if files is None:
        files = [p for p in directory.rglob("*") if p.is_file() and p.name != "MANIFEST.json"]
    entries = {}
    for p in sorted(Path(f) for f in files):
        rel = p.resolve().relative_to(directory.resolve()).as_posix()
        entries[rel] = {"sha256": sha256_of(p), "bytes": p.stat().st_size}
    out = directory / "MANIFEST.json"
    out.write_text(json.dumps({"files": entries}, indent=2, sort_keys=True) + "\n")
    return out


def cmd_figure_manifest(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files] if args.files else None
    write_manifest(Path(args.directory), files)
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from neuroplastic.analysis import estimate
    from neuroplastic.experiments import WorkflowConfigError, plan_from_file

    try:
        plan = plan_from_file(args.configfile)
    except WorkflowConfigError as err:
        return _fail(str(err))
    if args.measure:  # it trains here: time it as a training process runs (neuroplastic.allocator)
        from neuroplastic.allocator import keep_freed_memory

        keep_freed_memory()
    try:
        est = estimate.estimate(
            plan,
            measure_updates=args.updates,
            cpu_steps_per_s=args.cpu_updates_per_s,
            gpu_steps_per_s=args.gpu_updates_per_s,
            threads=args.threads,
            measurements=args.measurements,
            measure_here=args.measure,
            runs_per_gpu=args.runs_per_gpu,
        )
    except ValueError as err:
        return _fail(str(err))
    budget_unit = "gpu" if args.gpu_hours is not None else "cpu" if args.cpu_hours is not None else None
    out = estimate.public(est)
    text = estimate.format_report(est)
    if budget_unit is not None:
        try:
            budget = plan_budget(
                plan, est, budget_unit, args.gpu_hours if budget_unit == "gpu" else args.cpu_hours, args.order
            )
        except ValueError as err:
            return _fail(str(err))
        overlay = subset_overlay(args.configfile, budget["kept"], args.overlay_out) if budget["kept"] else ""
        if overlay and args.overlay_out:
            Path(args.overlay_out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.overlay_out).write_text(overlay)
        out["budget"] = {**budget, "overlay": overlay}
        text += format_budget(budget, overlay, args.overlay_out)
    elif args.overlay_out:
        return _fail("--overlay-out needs --gpu-hours or --cpu-hours (the budget that picks the experiments)")
    print(json.dumps(out, indent=2) if args.json else text, end="")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="validate a workflow config and print its experiments and run counts")
    p.add_argument("--configfile", required=True)
    p.add_argument("--members", action="store_true", help="also list every (experiment, variant, env, seed, run id)")
    p.add_argument("--experiment-table", metavar="EXPERIMENT", help="print that experiment's member table (JSON)")
    p.add_argument("--tables-dir", metavar="DIR", help="write every experiment's member table to DIR/<experiment>.json")
    p.add_argument("--schema", default=None, help="config schema (default: workflow/schemas/config.schema.yaml)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("aggregate", help="one experiment's runs → tidy tables (curves, final; parquet + csv)")
    p.add_argument("--table", required=True, help="experiment table JSON written by the workflow")
    p.add_argument("--runs", default="results/runs", help="directory holding <run_id>/ run directories")
    p.add_argument("--out", required=True, help="output directory (curves.*, final.*)")
    p.add_argument("--final-fraction", type=float, default=0.1, help="last fraction of points averaged as final")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("figures", help="figure data, rendering and the MANIFEST of paper_figures/<name>/")
    fsub = p.add_subparsers(dest="figures_command", required=True)
    q = fsub.add_parser("data", help="compute a figure's statistics (CSV) from aggregated tables")
    q.add_argument("--spec", required=True, help="figure spec JSON written by the workflow")
    q.add_argument("--aggregates", required=True, help="directory with <experiment>/{curves,final}.parquet")
    q.add_argument("--out", required=True, help="figure data CSV")
    q.set_defaults(func=cmd_figure_data)
    q = fsub.add_parser("render", help="draw a figure (PDF+PNG) or write a table (CSV+MD+TeX) from its data")
    q.add_argument("--spec", required=True)
    q.add_argument("--data", required=True)
    q.add_argument("--out", required=True, help="output prefix, e.g. paper_figures/smoke/main_curves")
    q.set_defaults(func=cmd_figure_render)
    q = fsub.add_parser("kinds", help="list the registered figure/table kinds with their keys and defaults")
    q.add_argument("--markdown", action="store_true", help="as config/README.md's table of kinds")
    q.set_defaults(func=cmd_figure_kinds)
    q = fsub.add_parser("manifest", help="write MANIFEST.json (sha256 per file) for a figures directory")
    q.add_argument("directory")
    q.add_argument("files", nargs="*", help="files to list (default: every file in the directory)")
    q.set_defaults(func=cmd_figure_manifest)

    p = sub.add_parser("estimate", help="compute estimate of a workflow config (CPU-hours, GPU-hours)")
    p.add_argument("--configfile", required=True)
    p.add_argument(
        "--measurements",
        action="append",
        default=None,
        metavar="JSON",
        help="throughput JSON from benchmarks/throughput.py (repeatable; before the packaged ones)",
    )
    p.add_argument("--measure", action="store_true", help="time every class here instead (slow)")
    p.add_argument("--updates", type=int, default=None, help="with --measure: loop steps timed per class")
    p.add_argument("--runs-per-gpu", type=int, default=None, help="packing plan (default: train.runs_per_gpu or 1)")
    p.add_argument("--cpu-updates-per-s", type=float, default=None, help="use this CPU env-steps/s for every class")
    p.add_argument("--gpu-updates-per-s", type=float, default=None, help="use this GPU env-steps/s for every class")
    p.add_argument("--threads", type=int, default=None, help="torch threads while measuring")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--gpu-hours", type=float, default=None, help="list which experiments fit this many GPU-hours, cumulatively"
    )
    budget.add_argument(
        "--cpu-hours", type=float, default=None, help="list which experiments fit this many CPU-hours, cumulatively"
    )
    p.add_argument(
        "--order",
        choices=BUDGET_ORDERS,
        default="paper",
        help="with a budget: paper = the config's own order (the paper's main results first); cheapest = "
        "each experiment's own cost, ascending",
    )
    p.add_argument(
        "--overlay-out", default=None, metavar="YAML", help="with a budget: write the overlay that runs what fits here"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)
