"""CLI for watching a reproduction: `neuroplastic status|plot|tensorboard` (wired in cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _fail(msg: str, code: int = 2) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def _plan(configfile: str, schema: str | None = None):
    from neuroplastic.experiments import plan_from_file

    return plan_from_file(configfile, schema_path=Path(schema) if schema else None)


def cmd_status(args: argparse.Namespace) -> int:
    from neuroplastic.experiments import WorkflowConfigError
    from neuroplastic.status import format_report, grid_status

    try:
        plan = _plan(args.configfile)
    except WorkflowConfigError as err:
        return _fail(str(err))
    runs = Path(args.runs)
    if not runs.is_dir():
        return _fail(f"runs directory {runs} does not exist (run from the repository root, or pass --runs)")
    status = grid_status(plan, runs, Path(args.logs), stale_after=args.stale_minutes * 60)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(format_report(status, show_all=args.all), end="")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from neuroplastic.quickplot import PlotError, plot

    metrics = args.metric or ["eval_return"]
    out = Path(args.out or f"plot-{'-'.join(metrics)}.png")
    try:
        warnings = plot([Path(d) for d in args.run_dirs], metrics, out)
    except PlotError as err:
        return _fail(str(err), 1)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(out)
    return 0


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from neuroplastic.events import link_tree
    from neuroplastic.experiments import WorkflowConfigError

    try:
        plan = _plan(args.configfile, args.schema)
    except WorkflowConfigError as err:
        return _fail(str(err))
    out = Path(args.out) / plan.name
    n = link_tree(plan, Path(args.runs), out)
    print(f"{out}: {n} runs as <experiment>/<variant>/<env>/seed<k>; view with: tensorboard --logdir {out}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="state of every run of a workflow config, progress in env steps, ETA")
    p.add_argument("--configfile", required=True, help="workflow config, e.g. config/paper.yaml")
    p.add_argument("--runs", default="results/runs", help="directory of run directories (default: results/runs)")
    p.add_argument("--logs", default="results/logs/train", help="training logs <run_id>.log (default: %(default)s)")
    p.add_argument(
        "--stale-minutes",
        type=float,
        default=30.0,
        help="a run silent for longer counts as failed (killed); default %(default)s",
    )
    p.add_argument("--all", action="store_true", help="list done and not-started runs too")
    p.add_argument("--json", action="store_true", help="every run's state as JSON, for scripts")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("plot", help="PNG of one or more runs' curves (any logged metric)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "--metric", action="append", help="metric to plot, repeatable: one panel each (default: eval_return)"
    )
    p.add_argument("--out", default=None, help="PNG file (default: plot-<metric>.png)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "tensorboard", help="readable TensorBoard tree: <out>/<config>/<experiment>/<variant>/<env>/seed<k> links"
    )
    p.add_argument("--configfile", required=True)
    p.add_argument("--runs", default="results/runs")
    p.add_argument("--out", default="results/tensorboard", help="default: %(default)s")
    p.add_argument("--schema", default=None, help="config schema (default: workflow/schemas/config.schema.yaml)")
    p.set_defaults(func=cmd_tensorboard)
