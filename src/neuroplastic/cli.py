"""`neuroplastic` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def _pin_gpu(args: argparse.Namespace) -> None:
    """Workstation packing: claim the least loaded of `--gpus` GPUs before CUDA is initialised."""
    if not args.gpus:
        return
    from neuroplastic import gpu_slots

    slot_dir = Path(args.gpu_slot_dir or Path(args.out).resolve().parent.parent / "gpu-slots")
    got = gpu_slots.pin_process(slot_dir, args.gpus, args.gpu_weight)
    if not args.quiet:
        print(f"pinned to GPU {got.device} (CUDA_VISIBLE_DEVICES)", file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    try:
        _pin_gpu(args)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from neuroplastic import config, loop

    try:
        cfg = config.load(args.config)
    except config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _set_threads(args.threads)
    try:
        loop.train(
            cfg,
            Path(args.out),
            ckpt_dir=Path(args.ckpt_dir) if args.ckpt_dir else None,
            device=args.device,
            progress=not args.quiet,
            tensorboard=args.tensorboard,
            compile=args.compile,
        )
    except (loop.NonFiniteLossError, loop.RunDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from neuroplastic import config

    try:
        cfg = config.load(args.config)
    except config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"run_id": config.run_id(cfg), "config": cfg.model_dump(mode="json")}, indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from neuroplastic.agents import AGENTS
    from neuroplastic.config import RunConfig
    from neuroplastic.methods import METHODS

    schema = {
        "run": RunConfig.model_json_schema(),
        "agents": {k: v.Params.model_json_schema() for k, v in sorted(AGENTS.items())},
        "methods": {k: v.Params.model_json_schema() for k, v in sorted(METHODS.items())},
    }
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuroplastic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    for name, help_ in (
        ("train", "train one run (resumes from its newest complete checkpoint)"),
        ("resume", "same as train: continue a run from its newest complete checkpoint"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("config", help="run config, YAML or JSON")
        p.add_argument("--out", required=True, help="run directory (config.json, metrics, manifest, done)")
        p.add_argument("--ckpt-dir", default=None, help="checkpoint dir (default: results/ckpt/<run dir name>)")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (not part of the run's identity)")
        p.add_argument(
            "--compile",
            default="auto",
            choices=["off", "compile", "graphs", "auto"],
            help="how the update runs: eager (off), torch.compile, CUDA graphs; auto = graphs on CUDA, off on CPU "
            "(not part of the run's identity)",
        )
        p.add_argument(
            "--threads",
            type=int,
            default=int(os.environ.get("NEUROPLASTIC_THREADS", "0")) or None,
            help="torch threads (default: torch's choice, or $NEUROPLASTIC_THREADS)",
        )
        p.add_argument("--quiet", action="store_true", help="no progress output")
        p.add_argument(
            "--tensorboard",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="TensorBoard event files beside metrics.jsonl (default: on; not part of the run's identity)",
        )
        p.add_argument(
            "--gpus",
            type=int,
            default=0,
            help="share a workstation's N GPUs with other runs: pin this run to the least loaded one (0: no pinning)",
        )
        p.add_argument(
            "--gpu-slot-dir",
            default=None,
            help="where runs record which GPU they hold (default: <run dir>/../../gpu-slots, i.e. results/gpu-slots)",
        )
        p.add_argument(
            "--gpu-weight",
            type=int,
            default=1,
            help="this run's share of a GPU, in slots (for the least-loaded choice)",
        )
        p.set_defaults(func=cmd_train)

    p = sub.add_parser("validate", help="resolve a run config and print it with its run id")
    p.add_argument("config")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON schema of run configs, agents and methods")
    p.set_defaults(func=cmd_schema)

    from neuroplastic.analysis.commands import add_parsers as add_workflow_parsers

    add_workflow_parsers(sub)  # plan, aggregate, figures, estimate
    from neuroplastic.watch import add_parsers as add_watch_parsers

    add_watch_parsers(sub)  # status, plot, tensorboard
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
