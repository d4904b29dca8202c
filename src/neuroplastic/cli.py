"""`neuroplastic` command line."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path


def _set_threads(threads: int | None) -> None:
    if threads:
        from neuroplastic.threads import limit_threads

        limit_threads(threads)


def _start_training_process(quiet: bool) -> None:
    """What every training process sets up first: glibc keeps freed memory for reuse (neuroplastic.allocator)."""
    from neuroplastic.allocator import keep_freed_memory

    setting = keep_freed_memory()
    if not setting.applied and not quiet:
        print(f"note: allocator settings not applied: {setting.reason}", file=sys.stderr)


def _pin_gpu(args: argparse.Namespace, runs_dir: Path) -> None:
    """Workstation packing: claim the least loaded of `--gpus` GPUs before CUDA is initialised."""
    if not args.gpus:
        return
    from neuroplastic import gpu_slots

    slot_dir = Path(args.gpu_slot_dir or runs_dir.resolve().parent / "gpu-slots")
    got = gpu_slots.pin_process(slot_dir, args.gpus, args.gpu_weight)
    if not args.quiet:
        print(f"pinned to GPU {got.device} (CUDA_VISIBLE_DEVICES)", file=sys.stderr)


# Exit status of a run stopped by SIGTERM after writing its checkpoint: sysexits' EX_TEMPFAIL ("try again later").
# A rerun resumes it; Snakemake's `retries` (every profile sets them) reruns it like any failed job.
EXIT_STOPPED = 75


def _train_one(config_path: Path, out: Path, args: argparse.Namespace, ckpt_dir: Path | None = None) -> int:
    """One run; 0 on success, 1 for a failed run (non-finite loss, wrong run dir, a full disk, a run another
    process is training), 2 for an invalid config, EXIT_STOPPED for a run stopped by SIGTERM at a checkpoint."""
    from neuroplastic import config, locks, loop, runlog, runs

    try:
        cfg = runs.load(config_path)
    except config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        loop.train(
            cfg,
            out,
            ckpt_dir=ckpt_dir,
            device=args.device,
            progress=not args.quiet,
            tensorboard=args.tensorboard,
            compile=args.compile,
        )
    except loop.Stopped as err:
        print(str(err), file=sys.stderr)
        return EXIT_STOPPED
    except (loop.NonFiniteLossError, loop.RunDirError, runlog.DiskWriteError, locks.LockHeldError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    _start_training_process(args.quiet)
    try:
        _pin_gpu(args, Path(args.out).parent)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _set_threads(args.threads)
    return _train_one(Path(args.config), Path(args.out), args, Path(args.ckpt_dir) if args.ckpt_dir else None)


@contextlib.contextmanager
def _output_to(log_path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so native libraries' output too) to a
    fresh log file, and back afterwards."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(log_path, "w") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def cmd_train_batch(args: argparse.Namespace) -> int:
    """Train runs one after another in this process: the workflow's `train.runs_per_job`, for runs so short that
    starting a process (imports) costs more than training. Each run is exactly what `neuroplastic train` would
    do with it (its own seeding, run dir, checkpoints and log); a failed run does not stop the others.

    SIGTERM stops the batch: the run in training writes a checkpoint, the runs not yet started are left alone, the
    finished ones keep their `done`, and the batch exits with EXIT_STOPPED; its rerun skips the finished runs and
    resumes the stopped one."""
    _start_training_process(args.quiet)
    from neuroplastic import loop

    try:
        _pin_gpu(args, Path(args.runs))
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _set_threads(args.threads)
    failed: list[str] = []
    with loop.STOP.installed():
        for index, rid in enumerate(args.run_ids):
            if loop.STOP.signum is not None:
                left = args.run_ids[index:]
                print(f"stopped by a signal before {len(left)} runs started: {' '.join(left)}", file=sys.stderr)
                return EXIT_STOPPED
            log_path = Path(args.logs) / f"{rid}.log"
            with _output_to(log_path):
                try:
                    status = _train_one(Path(args.configs) / f"{rid}.json", Path(args.runs) / rid, args)
                except Exception:  # one run's crash must not cost the batch's other runs
                    traceback.print_exc()
                    status = 1
            outcome = {0: "trained", EXIT_STOPPED: "stopped at a checkpoint (a rerun resumes it)"}
            print(f"[{rid}] " + outcome.get(status, f"FAILED (exit {status}), see {log_path}"), file=sys.stderr)
            if status == EXIT_STOPPED:
                left = args.run_ids[index + 1 :]
                print(f"stopped by a signal; not started: {' '.join(left) or 'none'}", file=sys.stderr)
                return EXIT_STOPPED
            if status:
                failed.append(rid)
    if failed:
        print(f"error: {len(failed)} of {len(args.run_ids)} runs failed: {' '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from neuroplastic import config, runs

    try:
        cfg = runs.load(args.config)
    except config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"run_id": config.run_id(cfg), "config": cfg.model_dump(mode="json")}, indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from neuroplastic.agents import AGENTS
    from neuroplastic.config import RunConfig
    from neuroplastic.methods import METHODS
    from neuroplastic.presets import PRESETS

    schema = {
        "run": RunConfig.model_json_schema(),
        "agents": {k: v.Params.model_json_schema() for k, v in sorted(AGENTS.items())},
        "methods": {k: v.Params.model_json_schema() for k, v in sorted(METHODS.items())},
        # `preset: <name>` in a run config fills the keys it leaves unset with these (neuroplastic.presets).
        "presets": {k: dataclasses.asdict(p) for k, p in sorted(PRESETS.items())},
    }
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def _add_execution_options(p: argparse.ArgumentParser) -> None:
    """How a run executes; none of it is part of the run's identity."""
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


def _add_gpu_sharing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpus",
        type=int,
        default=0,
        help="share a workstation's N GPUs with other jobs: pin this process to the least loaded one (0: no pinning)",
    )
    p.add_argument(
        "--gpu-slot-dir",
        default=None,
        help="where processes record which GPU they hold (default: gpu-slots beside the runs' directory, "
        "i.e. results/gpu-slots)",
    )
    p.add_argument(
        "--gpu-weight",
        type=int,
        default=1,
        help="this process's share of a GPU, in slots (for the least-loaded choice)",
    )


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
        _add_execution_options(p)
        _add_gpu_sharing_options(p)
        p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "train-batch",
        help="train several runs one after another in one process (the workflow's train.runs_per_job)",
    )
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument("--configs", required=True, help="directory of <run id>.json run configs")
    p.add_argument("--runs", required=True, help="directory of run directories (<runs>/<run id>)")
    p.add_argument("--logs", required=True, help="directory for each run's log (<logs>/<run id>.log)")
    _add_execution_options(p)
    _add_gpu_sharing_options(p)
    p.set_defaults(func=cmd_train_batch)

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
