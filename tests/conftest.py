"""Shared test set-up and helpers: tiny configs, random batches, runs stepped by hand, metrics tables, interrupted
and killed runs, and the host-sync guard. Test modules import the helpers from here (`from tests.conftest
import ...`); pytest applies the fixtures."""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

os.environ.setdefault("MUJOCO_GL", "egl")
# One torch thread per test process: CI has 2 cores, and oversubscribed BLAS threads slow tiny matmuls ~50×
# when other processes (subprocess runs, the DAG) share the cores. Subprocesses inherit these.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NEUROPLASTIC_THREADS", "1")
torch.set_num_threads(1)

from neuroplastic import config, loop, runs  # noqa: E402  (after the thread settings above)
from neuroplastic.replay import Batch  # noqa: E402
from neuroplastic.seeding import global_rng_state, set_global_rng_state  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Code under test may change the thread count (the CLI's --threads); every test starts on one thread again.
    torch.set_num_threads(1)


@pytest.fixture
def repo() -> Path:
    return REPO


# --- parallel workers (pytest-xdist; `make test` runs `-n auto --dist loadgroup`) ------------------------------------
# Tests that share state beyond their tmp_path run on one worker: the modules that build module-scoped fixtures (the
# tiny DAG, a trained run, the SLURM cluster) would otherwise build them once per worker. These modules are the
# longest chains of the suite, so they go first, longest first (the container build and the SLURM tests on separate
# workers), and the many short tests fill in around them; the one thing the first two share, apt-get's single dpkg
# lock, is taken through `system_install_lock`.
#
# The grouping is done by a scheduler of our own: xdist 3.8's `loadgroup` marks a group by rewriting an item's
# `_nodeid`, which pytest 9.2 no longer reads (`Node.nodeid` comes from `_id`), so with pytest 9.2 its groups are
# silently empty and every test is scheduled on its own (the tiny DAG was built once per worker).
_ONE_WORKER_MODULES = (
    "tests/container/test_container.py",
    "tests/workflow/test_slurm.py",
    "tests/workflow/test_workflow.py",
    "tests/smoke/test_faults.py",
)


def _module_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def work_unit(nodeid: str) -> str:
    """The unit of work a test is scheduled in: its module for the one-worker modules, else the test itself."""
    module = _module_of(nodeid)
    return module if module in _ONE_WORKER_MODULES else nodeid


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    first = {module: rank for rank, module in enumerate(_ONE_WORKER_MODULES)}
    items.sort(key=lambda item: first.get(_module_of(item.nodeid), len(first)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    # Units go out in collection order (longest chains first), not sorted by their number of tests.
    config.option.loadscopereorder = False
    return OneWorkerModules(config, log)


@contextlib.contextmanager
def system_install_lock():
    """Held while a test installs system packages (apt-get allows one installer at a time) or starts the services
    they bring, so that parallel workers queue instead of failing on dpkg's lock."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "neuroplastic-tests-system-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- configs and batches -----------------------------------------------------------------------------------------
def tiny_config(**overrides) -> dict:
    cfg = {
        "agent": "td3",
        "env": "Hopper-v4",
        "seed": 0,
        "steps": 600,
        "start_steps": 200,
        "eval_every": 300,
        "eval_episodes": 1,
        "log_every": 200,
        "checkpoint_every": 0,
    }
    cfg.update(overrides)
    return cfg


def random_batch(agent, n: int = 64, seed: int = 0, done_prob: float = 0.0) -> Batch:
    """A batch of standard-normal observations and rewards, uniform actions within ±max_action; with
    `done_prob` > 0 each transition is a termination with that probability."""
    g = torch.Generator().manual_seed(seed)
    e = agent.env
    obs = torch.randn(n, e.obs_dim, generator=g)
    action = (torch.rand(n, e.act_dim, generator=g) * 2 - 1) * e.max_action
    reward = torch.randn(n, 1, generator=g)
    next_obs = torch.randn(n, e.obs_dim, generator=g)
    not_done = (torch.rand(n, 1, generator=g) > done_prob).float() if done_prob > 0 else torch.ones(n, 1)
    return Batch(obs, action, reward, next_obs, not_done)


# --- runs stepped by hand (several runs in one process, each with its own global RNG) --------------------------
# Each run built here keeps its own copy of the global RNGs, so that several runs can be stepped in turn in one
# process exactly as each would run alone.
_RNG: dict[int, dict] = {}


def build_run(
    method=None, agent: str = "td3", hidden: int = 32, batch_size: int = 64, **overrides
) -> tuple[loop.Run, loop.LoopState]:
    cfg = runs.resolve(
        tiny_config(agent={"name": agent, "hidden": hidden, "batch_size": batch_size}, method=method or [], **overrides)
    )
    run = loop.build(cfg, torch.device("cpu"))
    _RNG[id(run)] = global_rng_state()
    return run, loop.LoopState()


def advance(run: loop.Run, state: loop.LoopState, until: int) -> None:
    """Run loop iterations (collect, on_step, update, on_update) up to and including env step `until`."""
    set_global_rng_state(_RNG[id(run)])
    while state.step < until:
        loop.advance(run, state, state.step + 1)
    _RNG[id(run)] = global_rng_state()


def the_method(run: loop.Run, index: int = 0):
    return run.methods.methods[index]


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v is not None}


def equal_states(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths at which two nested checkpoint-like structures differ (empty = identical)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return [path]
        return [] if a.shape == b.shape and torch.equal(a, b) else [path]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return [] if np.array_equal(a, b) else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}.keys"]
        return [d for k in a for d in equal_states(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}.len"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in equal_states(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def full_state(run: loop.Run) -> dict[str, Any]:
    """Agent (weights, targets, optimizers, counters), replay and the global torch RNG."""
    return {"agent": run.agent.state_dict(), "replay": run.replay.state_dict(), "torch_rng": _RNG[id(run)]["torch"]}


# --- trained runs --------------------------------------------------------------------------------------------------
def metrics_table(out: Path) -> pd.DataFrame:
    """A run's metrics.parquet as one row per step, one column per metric (NaN where not logged)."""
    df = pd.read_parquet(Path(out) / "metrics.parquet")
    return df.pivot_table(index="step", columns="metric", values="value", dropna=False)


class _Killed(Exception):
    pass


def train_until_killed(
    cfg: config.RunConfig, out: Path, stop_at: int, monkeypatch: pytest.MonkeyPatch, **train_kw: Any
) -> None:
    """Train `cfg` into `out` and die just before env step `stop_at`, as kill -9 would (no clean-up)."""
    real_collect = loop.collect

    def dying_collect(run, state, t):
        if t == stop_at:
            raise _Killed
        real_collect(run, state, t)

    monkeypatch.setattr(loop, "collect", dying_collect)
    with pytest.raises(_Killed):
        loop.train(cfg, out, progress=False, **train_kw)
    monkeypatch.setattr(loop, "collect", real_collect)


def train_until_first_checkpoint(cfg: config.RunConfig, out: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Train `cfg` into `out` and die right after its first checkpoint is saved; returns the saved state."""
    from neuroplastic.checkpoint import Checkpointer

    save, saved = Checkpointer.save, []

    def save_then_die(self, step, state):
        save(self, step, state)
        saved.append(state)
        raise _Killed

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    with pytest.raises(_Killed):
        loop.train(cfg, out, progress=False)
    monkeypatch.setattr(Checkpointer, "save", save)
    return saved[0]


def train_interrupted(cfg: config.RunConfig, out: Path, stop_at: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train `cfg` into `out`, dying just before env step `stop_at` (after its last checkpoint), then train it
    again: the second call resumes in-process from the checkpoint, as a restarted job would."""
    train_until_killed(cfg, out, stop_at, monkeypatch)
    loop.train(cfg, out, progress=False)


def assert_resume_is_bit_identical(tmp_path: Path, cfg: config.RunConfig, stop_at: int, monkeypatch) -> pd.DataFrame:
    """A run interrupted before `stop_at` and resumed logs exactly what the uninterrupted run logs; returns the
    uninterrupted run's metrics table."""
    assert cfg.checkpoint_every and cfg.checkpoint_every < stop_at, "the run must checkpoint before it stops"
    loop.train(cfg, tmp_path / "whole", progress=False)
    train_interrupted(cfg, tmp_path / "split", stop_at, monkeypatch)
    whole, split = metrics_table(tmp_path / "whole"), metrics_table(tmp_path / "split")
    pd.testing.assert_frame_equal(whole, split, check_exact=True)
    return whole


def train_cli(cfg_path: Path, out: Path) -> subprocess.Popen:
    """`neuroplastic train` in a subprocess on one torch thread."""
    return subprocess.Popen(
        [sys.executable, "-m", "neuroplastic.cli", "train", str(cfg_path), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NEUROPLASTIC_THREADS": "1"},
    )


def run_killed_and_resumed(tmp_path: Path, cfg_dict: dict, kill_after_checkpoints: int = 1) -> bytes:
    """Run through the CLI, SIGKILL it after `kill_after_checkpoints` complete checkpoints, run it again."""
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg_dict))
    out = tmp_path / "runs" / "killed"
    ckpt = tmp_path / "ckpt" / "killed"
    proc = train_cli(cfg_path, out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(list(ckpt.glob("*.complete"))) >= kill_after_checkpoints or proc.poll() is not None:
            break
        time.sleep(0.05)
    # Let it run past the checkpoint so there is work after it to lose and redo.
    time.sleep(0.7)
    # A run that already wrote `done` may still be shutting down: both mean it finished too early.
    assert proc.poll() is None and not (out / "done").exists(), "run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "done").exists()
    lines_at_kill = (out / "metrics.jsonl").read_bytes().count(b"\n")
    assert lines_at_kill > 0
    resumed = train_cli(cfg_path, out)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err.decode()
    assert b"resumed from checkpoint" in err
    return (out / "metrics.parquet").read_bytes()


def assert_kill_9_resume_is_bit_identical(tmp_path: Path, cfg_dict: dict) -> None:
    """A run SIGKILLed after its first checkpoint and rerun ends with the metrics of an uninterrupted run."""
    resumed = run_killed_and_resumed(tmp_path, cfg_dict)
    ref = tmp_path / "runs" / "reference"
    proc = train_cli(tmp_path / "cfg.yaml", ref)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert resumed == (ref / "metrics.parquet").read_bytes()


# --- a disk that fills up -----------------------------------------------------------------------------------------
class FullDisk:
    """Files that `open` (patched into the modules under test) opens for writing share `free` bytes: a write past
    them writes what still fits and fails with ENOSPC, as on a disk that fills up. `free=None`: no limit yet."""

    def __init__(self, free: int | None = None) -> None:
        self.free = free

    def open(self, file, mode="r", *args, **kwargs):
        f = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115 - the caller closes it
        return _OnFullDisk(f, self) if any(c in mode for c in "wa+") else f


class _OnFullDisk:
    def __init__(self, f, disk: FullDisk) -> None:
        self._f, self._disk = f, disk

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        free = self._disk.free
        if free is None or len(view) <= free:
            if free is not None:
                self._disk.free = free - len(view)
            return self._f.write(data)
        self._disk.free = 0
        if free:
            self._f.write(bytes(view[:free]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


# --- the host-sync guard -----------------------------------------------------------------------------------------
SYNCING = ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__")


@contextlib.contextmanager
def forbid_host_sync():
    """Tensor methods that copy device→host raise inside this block (torch.optim is exempt: it keeps its step
    counters on the host on purpose, on CUDA too, so its `.item()` calls never wait for the device)."""
    saved = {name: getattr(torch.Tensor, name) for name in SYNCING}

    def trap(name):
        def raiser(self, *a, **k):
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            if "/torch/optim/" in caller:
                return saved[name](self, *a, **k)
            raise AssertionError(f"host sync: Tensor.{name} called inside the update step")

        return raiser

    try:
        for name in SYNCING:
            setattr(torch.Tensor, name, trap(name))
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)
