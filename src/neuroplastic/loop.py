"""The one training loop: collect, update, method hooks, log, evaluate, checkpoint.

Iteration t (t = 1..steps) takes environment step t:
  1. act: uniform random while t ≤ start_steps, else the agent's exploration policy;
  2. env step, store the transition (`terminated` ends bootstrapping, `truncated` does not), reset on episode end
     and call `methods.on_episode_end`;
  3. `methods.on_step(agent, t)`;
  4. if t > start_steps: `agent.replay_ratio` updates per env step (1 for TD3/SAC; fractional ratios accumulate,
     so 0.5 updates on every 2nd step), each: sample (`methods.on_sample` may replace the batch), `agent.update`,
     `methods.on_update`; with `update_schedule: episode_end` the updates env steps earn are owed until the
     episode ends (or the run does) and made then, all of them: the same count in another order (the TD3
     paper's protocol); on-policy agents (PPO) instead update on the minibatches of their rollout store
     (the replay slot) each time it is full (`update_batches`);
  5. every `log_every` steps: losses, plasticity metrics and the env's phase metrics; every `eval_every` steps:
     the env's eval row (`eval_return`; the `cycling` env adds every task's return, see `envs.TrainingEnv`);
  6. every `checkpoint_every` steps: an atomic checkpoint of everything.
A resumed run restores all of this and continues bit-identically (on CPU).

SIGTERM (a SLURM time limit or preemption, `kill`) does not end the process at once: the iteration under way
finishes, a checkpoint of its step is written, and `train` raises Stopped, so the rerun loses nothing. While it
trains, a process holds the run's `train.lock` (locks.py): a second process on the same run is refused.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from neuroplastic import capture, envs, locks, metrics, probes, runlog, runs
from neuroplastic.agents import AGENTS, Agent
from neuroplastic.checkpoint import Checkpointer
from neuroplastic.config import RunConfig, canonical_json, run_id
from neuroplastic.methods import RunContext, build_stack
from neuroplastic.methods.base import MethodStack
from neuroplastic.replay import Replay
from neuroplastic.seeding import global_rng_state, seed_everything, set_global_rng_state

CHECKPOINT_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    pass


class RunDirError(RuntimeError):
    pass


class Stopped(RuntimeError):
    """The run was asked to stop by a signal and wrote a checkpoint first: rerunning it resumes from there."""


class StopOnSignal:
    """Turns SIGTERM into a request that the training loop answers at the end of its current iteration (a
    checkpoint, then Stopped), instead of dying with the work since the last checkpoint. `installed()` nests: a
    `train-batch` process installs it once around all its runs, and each run's `train` inside it shares it."""

    SIGNALS = (signal.SIGTERM,)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at = 0.0  # time.monotonic() when it came
        self._depth = 0
        self._previous: dict[int, Any] = {}

    def _request(self, signum: int, frame: Any) -> None:
        self.signum, self.at = signum, time.monotonic()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            yield
            return
        if self._depth == 0:
            self.signum = None
            self._previous = {s: signal.signal(s, self._request) for s in self.SIGNALS}
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                for s, handler in self._previous.items():
                    signal.signal(s, handler)


STOP = StopOnSignal()


@dataclass
class LoopState:
    step: int = 0
    episode: int = 0
    episode_return: float = 0.0
    episode_steps: int = 0
    train_seconds: float = 0.0
    resumes: int = 0
    # Updates owed: each env step after start_steps adds `agent.replay_ratio`; whole units are spent on updates,
    # right away (`update_schedule: step`) or at the episode's end (`episode_end`, then it spans the episode and a
    # checkpoint taken mid-episode carries what is owed).
    update_credit: float = 0.0


def default_ckpt_dir(out: Path) -> Path:
    """`results/runs/<id>` → `results/ckpt/<id>`; elsewhere a sibling `ckpt/<name>` folder."""
    out = Path(out)
    parent = out.parent.parent if out.parent.name == "runs" else out.parent
    return parent / "ckpt" / out.name


@dataclass
class Run:
    """Everything a run holds in memory, built from a resolved config."""

    cfg: RunConfig
    device: torch.device
    env: envs.TrainingEnv
    agent: Agent
    methods: MethodStack
    replay: Replay
    metrics_gen: torch.Generator
    obs: np.ndarray
    probe: probes.ForgettingProbe | None = None
    # The update function: `agent.update` (eager) or a captured update (`--compile`, capture.py).
    update: Callable[[Any], None] | None = None


def build(cfg: RunConfig, device: torch.device) -> Run:
    seed_everything(cfg.seed)
    env = runs.make_training_env(cfg)
    obs, _ = env.reset(seed=cfg.seed)
    spec = envs.spec_of(env)
    ctx = RunContext(seed=cfg.seed, steps=cfg.steps, start_steps=cfg.start_steps, device=device)
    params, method_params = cfg.typed_params()
    methods = build_stack([m["name"] for m in cfg.method], method_params, ctx)
    agent_cls = AGENTS[cfg.agent["name"]]
    agent = agent_cls(params, spec, device, methods, cfg.seed)
    capacity = min(getattr(params, "buffer_size", None) or cfg.steps, cfg.steps)
    replay = agent.make_replay(capacity, seed=cfg.seed)
    metrics_gen = torch.Generator(device=device)
    metrics_gen.manual_seed(cfg.seed + 1)
    return Run(cfg, device, env, agent, methods, replay, metrics_gen, obs, probes.build(cfg))


def collect(run: Run, loop: LoopState, t: int) -> None:
    """Take env step `t` and store it. Only `terminated` ends bootstrapping; time limits do not."""
    run.agent.env_step = t
    if t <= run.cfg.start_steps:
        action = run.env.action_space.sample()
    else:
        action = run.agent.act(run.obs, explore=True)
    next_obs, reward, terminated, truncated, _ = run.env.step(action)
    run.replay.add(run.obs, action, reward, next_obs, terminated, truncated)
    loop.episode_return += float(reward)
    loop.episode_steps += 1
    if terminated or truncated:
        run.obs, _ = run.env.reset()
        loop.episode += 1
        loop.episode_return, loop.episode_steps = 0.0, 0
        run.methods.on_episode_end(run.agent, loop.episode, t)
    else:
        run.obs = next_obs
    loop.step = t


def advance(run: Run, loop: LoopState, t: int) -> None:
    """Steps 1-4 of iteration `t`: collect, `on_step`, and (after `start_steps`) the updates it is owed."""
    collect(run, loop, t)
    run.methods.on_step(run.agent, t)
    if t > run.cfg.start_steps:
        run_updates(run, update_batches(run, loop, t), t)


def run_updates(run: Run, batches: Iterable[Any], t: int) -> None:
    """The update of each batch (eager or captured, `run.update`), then `on_update`; after env step `t`."""
    for batch in batches:
        (run.update or run.agent.update)(batch)
        run.methods.on_update(run.agent, batch, t)


def update_batches(run: Run, loop: LoopState, t: int) -> Iterator[Any]:
    """The batches to update on after env step `t`: off-policy, `replay_ratio` credit (fractional ratios
    accumulate) and replay samples (`on_sample` may replace them), spent at once or, with `update_schedule:
    episode_end`, only when step `t` ended an episode (`collect` has reset `episode_steps`) or the run;
    on-policy, the agent's minibatches of its rollout store once it is full (its own epochs; no credit, no
    `on_sample`)."""
    if run.agent.on_policy:
        yield from run.agent.rollout_batches(run.replay)
        return
    loop.update_credit += run.agent.replay_ratio
    if run.cfg.update_schedule == "episode_end" and loop.episode_steps > 0 and t < run.cfg.steps:
        return
    while loop.update_credit >= 1.0:
        loop.update_credit -= 1.0
        yield sample_batch(run, t)


def sample_batch(run: Run, t: int) -> Any:
    """One off-policy training batch after env step `t`: a replay sample, unless `on_sample` replaces it."""
    batch = run.methods.on_sample(run.agent, run.replay, t)
    return run.replay.sample(run.agent.params.batch_size) if batch is None else batch


def evaluate(run: Run) -> dict[str, float]:
    """The env's eval row (`eval_return`, ...): deterministic episodes on fresh envs seeded seed+100."""
    cfg = run.cfg
    return run.env.eval_row(run.agent, cfg.eval_episodes, cfg.seed + envs.EVAL_SEED_OFFSET)


class Progress:
    """A tqdm bar on a terminal; otherwise one status line per `every_s` seconds (SLURM logs)."""

    def __init__(self, total: int, initial: int, label: str, every_s: float = 60.0) -> None:
        self.total, self.label, self.every_s = total, label, every_s
        self.bar = None
        self.last_print = time.monotonic()
        self.last_return: float | None = None
        if sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=initial, desc=label, unit="step", dynamic_ncols=True)

    def update(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(1)
        elif time.monotonic() - self.last_print >= self.every_s:
            self.last_print = time.monotonic()
            ret = "n/a" if self.last_return is None else f"{self.last_return:.1f}"
            print(
                f"[{self.label}] step {step}/{self.total} ({100 * step / self.total:.1f}%) last eval_return {ret}",
                file=sys.stderr,
                flush=True,
            )

    def eval(self, value: float) -> None:
        self.last_return = value
        if self.bar is not None:
            self.bar.set_postfix(eval_return=f"{value:.1f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _checkpoint_state(run: Run, loop: LoopState, log: runlog.MetricsLog) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "run_id": run_id(run.cfg),
        "loop": asdict(loop),
        "obs": run.obs,
        "agent": run.agent.state_dict(),
        "methods": run.methods.state_dict(),
        "replay": run.replay.state_dict(),
        "env": envs.get_state(run.env),
        "rng": global_rng_state(),
        "metrics_gen": run.metrics_gen.get_state(),
        "log_offset": log.offset(),
        "probe": run.probe.state_dict() if run.probe else None,
    }


def _restore(run: Run, state: dict[str, Any]) -> tuple[LoopState, int]:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"checkpoint format {state.get('format')} is not {CHECKPOINT_FORMAT}")
    if state["run_id"] != run_id(run.cfg):
        raise RunDirError(f"checkpoint belongs to run {state['run_id']}, not {run_id(run.cfg)}")
    run.methods.prepare_restore(run.agent, state["methods"])
    run.agent.load_state_dict(state["agent"])
    run.methods.load_state_dict(state["methods"])
    run.replay.load_state_dict(state["replay"])
    envs.set_state(run.env, state["env"])
    set_global_rng_state(state["rng"])
    run.metrics_gen.set_state(state["metrics_gen"])
    run.obs = state["obs"]
    if run.probe:
        run.probe.load_state_dict(state["probe"])
    return LoopState(**state["loop"]), state["log_offset"]


def _check_finite(run: Run, step: int) -> None:
    if run.agent.updates > 0 and bool(run.agent.nonfinite()):
        raise NonFiniteLossError(
            f"non-finite loss before step {step} (run {run_id(run.cfg)}, env {run.cfg.env}); "
            "the run is stopped and no `done` is written"
        )


def _log_training(run: Run, step: int) -> dict[str, float]:
    agent = run.agent
    values: dict[str, float] = {}
    _check_finite(run, step)
    if agent.updates > 0:
        names = list(agent.log_values())
        vals = torch.stack([v.float() for v in agent.log_values().values()]).cpu().tolist()
        values.update(zip(names, vals, strict=True))
        values["updates"] = float(agent.updates)
    # The replay-ratio trace: updates per env step in force now (Adaptive RR changes it during the run).
    values["replay_ratio"] = float(agent.replay_ratio)
    if len(run.replay) > 0:
        batch = run.replay.sample(run.cfg.metrics_batch, generator=run.metrics_gen)
        values.update(metrics.plasticity(agent.hidden_activations(batch)))
    values.update(metrics.density(agent.nets))
    values.update(run.methods.log_metrics(agent, run.replay, step))
    values.update(run.env.phase_metrics())
    return values


def train(
    cfg: RunConfig,
    out: Path,
    ckpt_dir: Path | None = None,
    device: str = "auto",
    progress: bool = True,
    tensorboard: bool = True,
    compile: str = "auto",
) -> Path:
    """Train one run into `out`, resuming from the newest complete checkpoint. Returns the `done` path.

    `device`, `progress`, `tensorboard` (event files beside `metrics.jsonl`) and `compile` (off | compile | graphs
    | auto: how updates execute, see capture.py) are not part of the run's identity.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rid = run_id(cfg)
    with (
        locks.held(
            out / runlog.TRAIN_LOCK,
            f"run {rid} ({out})",
            "another process is training this run; wait for it to finish or stop it, then run again",
        ),
        STOP.installed(),
    ):
        return _train_locked(cfg, out, ckpt_dir, device, progress, tensorboard, compile)


def _train_locked(
    cfg: RunConfig,
    out: Path,
    ckpt_dir: Path | None,
    device: str,
    progress: bool,
    tensorboard: bool,
    compile: str,
) -> Path:
    rid = run_id(cfg)
    cfg_path = out / runlog.CONFIG_JSON
    text = json.dumps(json.loads(canonical_json(cfg)), indent=2, sort_keys=True) + "\n"
    if cfg_path.exists() and cfg_path.read_text() != text:
        raise RunDirError(f"{out} already holds a different run's config.json; use a new --out directory")
    done = out / runlog.DONE
    if done.exists():
        print(f"[{rid}] already done: {done}", file=sys.stderr)
        return done
    if cfg_path.exists() and (out / runlog.MANIFEST_JSON).is_file() and (out / runlog.METRICS_PARQUET).is_file():
        # The manifest is written only after training finished and the parquet is complete. A scheduler that
        # deletes `done` (Snakemake does, for every job of a failed job group) gets it back without retraining.
        rows = len(runlog.read_jsonl(out / runlog.METRICS_JSONL))
        runlog.atomic_write(done, (json.dumps({"run_id": rid, "rows": rows}) + "\n").encode())
        print(f"[{rid}] already complete (manifest.json); restored {done} without training", file=sys.stderr)
        return done
    runlog.atomic_write(cfg_path, text.encode())

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else device.replace("auto", "cpu"))
    run = build(cfg, dev)
    ckpt = Checkpointer(ckpt_dir or default_ckpt_dir(out))
    log = runlog.MetricsLog(out / runlog.METRICS_JSONL, tensorboard=tensorboard)
    loop = LoopState()
    latest = ckpt.latest()
    offset = 0
    if latest is not None:
        loop, offset = _restore(run, latest[1])
        loop.resumes += 1
        print(f"[{rid}] resumed from checkpoint at step {loop.step}", file=sys.stderr)
    log.open(offset)
    run.update = capture.make_update(run.agent, compile)

    agent, env = run.agent, run.env
    bar = Progress(cfg.steps, loop.step, f"{rid} {cfg.env}") if progress else None
    t0 = time.perf_counter()
    saved_step = loop.step

    def save_checkpoint(t: int) -> Path:
        nonlocal t0, saved_step
        loop.train_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        saved_step = t
        return ckpt.save(t, _checkpoint_state(run, loop, log))

    try:
        while loop.step < cfg.steps:
            t = loop.step + 1
            advance(run, loop, t)

            row: dict[str, float] = {}
            if t % cfg.log_every == 0:
                row.update(_log_training(run, t))
            if t % cfg.eval_every == 0:
                row.update(evaluate(run))
                if bar:
                    bar.eval(row["eval_return"])
            if run.probe:
                row.update(run.probe.on_step(run, t))
            log.write(t, row)
            if cfg.checkpoint_every and t % cfg.checkpoint_every == 0 and t < cfg.steps:
                save_checkpoint(t)
            if bar:
                bar.update(t)
            if STOP.signum is not None and t < cfg.steps:
                path = save_checkpoint(t) if saved_step != t else ckpt.path(t)
                name = signal.Signals(STOP.signum).name
                raise Stopped(
                    f"[{rid}] stopped by {name} at step {t} of {cfg.steps}; checkpoint {path} written "
                    f"{time.monotonic() - STOP.at:.1f} s after the signal, run again to resume"
                )
        _check_finite(run, loop.step)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        loop.train_seconds += time.perf_counter() - t0
    finally:
        log.close()
        if bar:
            bar.close()
        env.close()

    rows = runlog.read_jsonl(out / runlog.METRICS_JSONL)
    runlog.write_parquet(rows, out / runlog.METRICS_PARQUET)
    man = runlog.manifest(
        {
            "run_id": rid,
            "env_id": cfg.env,
            "agent": cfg.agent["name"],
            "methods": [m["name"] for m in cfg.method],
            "device": str(dev),
            "compile": capture.resolve_mode(compile, dev),
            "env_steps": loop.step,
            "updates": agent.updates,
            "wall_seconds": round(loop.train_seconds, 3),
            "updates_per_s": round(agent.updates / loop.train_seconds, 3) if loop.train_seconds > 0 else None,
            "env_steps_per_s": round(loop.step / loop.train_seconds, 3) if loop.train_seconds > 0 else None,
            "resumes": loop.resumes,
        }
    )
    runlog.atomic_write(out / runlog.MANIFEST_JSON, (json.dumps(man, indent=2, sort_keys=True) + "\n").encode())
    runlog.atomic_write(done, (json.dumps({"run_id": rid, "rows": len(rows)}) + "\n").encode())
    ckpt.clear()
    return done
