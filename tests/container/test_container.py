"""CI tier "container": build the training image with podman and run the unit tests and a 300-step TD3 run in it.

Steps: install podman/debootstrap with apt where missing; make a Debian 12 base image locally (Docker Hub is
not reachable from CI) with containers/local-base.sh; build containers/Dockerfile's `test` target with
containers/build.sh (podman, chroot isolation), whose last step runs containers/run-in-image-check.sh inside
the image as its non-root user; then assert on the JSON summary that step prints. A second build of the default
target checks that the runtime image is what the build cache already holds and that build.sh records its digest.

The local CPU torch wheel (/opt/wheels, or $NEUROPLASTIC_WHEELS_DIR) is mounted as a find-links directory so
the build does not download the multi-GB CUDA wheels, and the host CA bundle is mounted for pip (TLS proxy).
Skips, with a warning, only where podman or debootstrap cannot be installed (no root, no apt).
Measured on a 2-core machine: apt + debootstrap + import ~1 min and image build ~3 min when idle; the whole
test took 12 min from a fresh machine (no podman, no base, no layers) and 3-13 min with cached layers while
other jobs held the load average at 5-13, the in-image unit tests being the part that grows with load.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
import uuid
import warnings
from pathlib import Path

import pytest

from tests.conftest import system_install_lock

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/debian-bookworm:min"
TAG = "localhost/neuroplastic:ci-test"
BUILD_TIMEOUT_S = 40 * 60

pytestmark = [pytest.mark.container, pytest.mark.slow]


def _skip_loudly(reason: str) -> None:
    message = f"CONTAINER TEST SKIPPED: {reason}"
    warnings.warn(message, pytest.PytestWarning, stacklevel=2)
    pytest.skip(message)


def _ensure_tools() -> None:
    """podman and debootstrap, installed with apt where missing (CI starts on a fresh machine)."""
    missing = [tool for tool in ("podman", "debootstrap") if shutil.which(tool) is None]
    if missing and not Path("/usr/share/keyrings/debian-archive-keyring.gpg").exists():
        missing.append("debian-archive-keyring")  # debootstrap checks bookworm's signatures with it
    if not missing:
        return
    if os.geteuid() != 0:
        _skip_loudly(f"{', '.join(missing)} missing and not running as root, so apt-get cannot install them")
    if shutil.which("apt-get") is None:
        _skip_loudly(f"{', '.join(missing)} missing and this machine has no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with system_install_lock():
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if proc.returncode != 0:
                _skip_loudly(f"`{' '.join(cmd)}` failed (rc {proc.returncode}): {proc.stderr.strip()[-800:]}")
    still = [tool for tool in ("podman", "debootstrap") if shutil.which(tool) is None]
    if still:
        _skip_loudly(f"apt-get install ran but {', '.join(still)} is still not on PATH")


def _run(cmd: list[str], log: Path, timeout: int) -> subprocess.CompletedProcess:
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-60:])
        pytest.fail(f"`{' '.join(cmd)}` failed with rc {proc.returncode}; last lines of {log}:\n{tail}")
    return proc


def _host_ca_bundle() -> str | None:
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _local_torch_wheels() -> str | None:
    wheels = Path(os.environ.get("NEUROPLASTIC_WHEELS_DIR", "/opt/wheels"))
    return str(wheels) if any(wheels.glob("torch-*.whl")) else None


def _image_id(ref: str) -> str | None:
    proc = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def test_image_builds_and_trains_inside(tmp_path: Path) -> None:
    t0 = time.monotonic()
    _ensure_tools()
    _run(["bash", "containers/local-base.sh", "--image", BASE_IMAGE], tmp_path / "base.log", timeout=900)
    t_base = time.monotonic() - t0

    common = ["bash", "containers/build.sh", "--engine", "podman", "--base-image", BASE_IMAGE]
    if ca := _host_ca_bundle():
        common += ["--ca-cert", ca]
    if wheels := _local_torch_wheels():
        common += ["--wheels", wheels]
    else:
        # No local wheel: take the CPU variant rather than GBs of CUDA wheels (CI has no GPU anyway).
        common += [
            "--torch-index-url",
            os.environ.get("NEUROPLASTIC_TORCH_INDEX", "https://download.pytorch.org/whl/cpu"),
        ]

    previous = _image_id(TAG)
    # The test target: its last RUN step executes containers/run-in-image-check.sh in the image. A fresh nonce
    # makes that step run again even when every layer is cached.
    test_digest = tmp_path / "test-digest"
    nonce = f"TEST_NONCE={uuid.uuid4().hex}"
    _run(
        [*common, "--tag", TAG, "--target", "test", "--digest-file", str(test_digest), "--build-arg", nonce],
        tmp_path / "build-test.log",
        timeout=BUILD_TIMEOUT_S,
    )
    log = (tmp_path / "build-test.log").read_text()
    t_test = time.monotonic() - t0 - t_base
    lines = [line for line in log.splitlines() if line.startswith("CONTAINER_CHECK ")]
    assert lines, f"the in-image check printed no CONTAINER_CHECK line; log: {tmp_path / 'build-test.log'}"
    summary = json.loads(lines[-1].removeprefix("CONTAINER_CHECK "))

    assert re.search(r"\d+ passed", log), "the unit tests did not run inside the image"
    assert "test_capture.py left out (no CUDA device" in log  # CI has no GPU: the CPU capture cases ran on the host
    assert not re.search(r"\d+ failed", log)
    assert summary["done"] is True
    assert summary["eval_finite"] is True and math.isfinite(summary["eval_return"])
    assert summary["env_steps"] == 300 and summary["updates"] == 200  # start_steps 100: updates from step 101
    assert summary["python"].startswith("3.11.")
    assert summary["torch"].startswith("2.13.0")
    assert summary["user"] == "neuro", "training must run as the image's non-root user"
    assert summary["mujoco_gl"] == "egl"
    assert 0 < summary["egl_frame_mean"] < 255, "the EGL-rendered DMC frame is blank"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", test_digest.read_text().strip())
    if previous and previous != _image_id(TAG):
        # The previous run's test image is now untagged; drop it so repeated runs do not pile up layers.
        subprocess.run(["podman", "rmi", previous], capture_output=True, check=False)

    # The default target is the runtime image; its layers are all cached by now, so this is quick.
    digest_file = tmp_path / "runtime" / "digest"
    _run(
        [*common, "--tag", TAG.replace("ci-test", "ci-runtime"), "--digest-file", str(digest_file)],
        tmp_path / "build.log",
        1800,
    )
    digest = digest_file.read_text().strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest != test_digest.read_text().strip()
    inspect = subprocess.run(
        ["podman", "image", "inspect", digest.removeprefix("sha256:")], capture_output=True, text=True, check=True
    )
    meta = json.loads(inspect.stdout)[0]
    config = meta.get("Config") or meta.get("config") or {}
    assert config.get("User") == "neuro"
    assert config.get("Entrypoint") == ["/usr/local/bin/neuroplastic-entrypoint"]
    env = dict(item.split("=", 1) for item in config.get("Env", []))
    assert env["MUJOCO_GL"] == "egl" and env["PYTHONUNBUFFERED"] == "1"
    assert "PIP_CERT" not in env, "the build-time CA bundle argument leaked into the image"
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if sha:
        assert env["NEUROPLASTIC_GIT_SHA"].startswith(sha)
    print(
        f"container test: base {t_base:.0f} s, build+in-image check {t_test:.0f} s, total {time.monotonic() - t0:.0f} s"
    )
