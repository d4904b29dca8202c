#!/usr/bin/env bash
# GPU smoke check: CUDA visible to torch, one EGL-rendered dm_control frame, TD3 update throughput.
#
#   inside the image:  docker run --rm --gpus all <image> bash /opt/neuroplastic/containers/gpu-smoke.sh
#                      apptainer exec --nv neuroplastic.sif bash /opt/neuroplastic/containers/gpu-smoke.sh
#   plain venv:        containers/gpu-smoke.sh            (uses $PYTHON, else the repo's .venv, else python3)
#
# Options: --require-gpu  exit 1 unless CUDA is available and the frame was rendered by a non-software
#                         renderer (use on GPU hosts; without it a CPU host still runs every step on CPU).
#          --updates N    timed TD3 updates (default 1000).
# Prints `key: value` lines and a final `GPU_SMOKE {json}` line.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x /opt/venv/bin/python ]; then
        PYTHON=/opt/venv/bin/python
    elif [ -x "$REPO/.venv/bin/python" ]; then
        PYTHON=$REPO/.venv/bin/python
    else
        PYTHON=$(command -v python3 || command -v python)
    fi
fi
export MUJOCO_GL=${MUJOCO_GL:-egl}
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-$MUJOCO_GL}

echo "python: $PYTHON"
echo "MUJOCO_GL: $MUJOCO_GL"
if command -v nvidia-smi > /dev/null; then
    echo "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
else
    echo "nvidia-smi: not found"
fi
if command -v ldconfig > /dev/null; then
    # A working nvidia-smi does not imply EGL: the EGL vendor library must be injected as well.
    echo "libEGL_nvidia: $( (ldconfig -p 2> /dev/null || true) | grep -m1 -o 'libEGL_nvidia.so[.0-9]*' || echo 'not found')"
fi

exec "$PYTHON" - "$@" << 'PY'
import argparse
import json
import sys
import time

import numpy as np
import torch

ap = argparse.ArgumentParser(prog="gpu-smoke.sh")
ap.add_argument("--require-gpu", action="store_true")
ap.add_argument("--updates", type=int, default=1000)
args = ap.parse_args()

out: dict = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
print(f"torch: {torch.__version__} (built for CUDA {torch.version.cuda})")
print(f"torch.cuda.is_available(): {out['cuda_available']}")
device = torch.device("cuda" if out["cuda_available"] else "cpu")
if out["cuda_available"]:
    out["device_name"] = torch.cuda.get_device_name(0)
    out["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    print(f"device: {out['device_name']} (compute capability {out['capability']})")
else:
    out["device_name"] = "cpu"
    print("device: cpu (no CUDA device visible)")

# One dm_control frame through the configured GL backend (EGL by default).
try:
    from dm_control import suite

    env = suite.load("cartpole", "swingup", task_kwargs={"random": 0})
    env.reset()
    t0 = time.perf_counter()
    frame = env.physics.render(84, 84, camera_id=0)
    out["render_s"] = round(time.perf_counter() - t0, 3)
    out["frame_shape"] = list(frame.shape)
    out["frame_mean"] = round(float(frame.mean()), 3)
    try:
        from OpenGL import GL

        env.physics.contexts.gl.make_current()
        out["gl_renderer"] = GL.glGetString(GL.GL_RENDERER).decode()
        out["gl_vendor"] = GL.glGetString(GL.GL_VENDOR).decode()
    except Exception as err:  # the renderer string is informative only
        out["gl_renderer"] = f"unknown ({type(err).__name__})"
    print(f"EGL frame: shape {tuple(frame.shape)}, mean pixel {out['frame_mean']}, renderer {out['gl_renderer']}")
except Exception as err:
    out["frame_mean"] = None
    out["render_error"] = f"{type(err).__name__}: {err}"
    print(f"EGL frame: FAILED {out['render_error']}")

# TD3 updates/s with neuroplastic's agent on synthetic batches already on the device (no env, no host syncs).
from neuroplastic import loop, runs
from neuroplastic.replay import Batch

cfg = runs.resolve({"agent": "td3", "env": "Hopper-v4", "steps": 10_000, "start_steps": 0})
run = loop.build(cfg, device)
spec = run.agent.env
g = torch.Generator(device=device).manual_seed(0)
batches = [
    Batch(
        torch.randn(256, spec.obs_dim, device=device, generator=g),
        torch.rand(256, spec.act_dim, device=device, generator=g) * 2 - 1,
        torch.randn(256, 1, device=device, generator=g),
        torch.randn(256, spec.obs_dim, device=device, generator=g),
        torch.ones(256, 1, device=device),
    )
    for _ in range(32)
]


def sync() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


for i in range(min(100, args.updates)):  # warm-up: allocator, kernels, cuBLAS handles
    run.agent.update(batches[i % len(batches)])
sync()
t0 = time.perf_counter()
for i in range(args.updates):
    run.agent.update(batches[i % len(batches)])
sync()
seconds = time.perf_counter() - t0
out["td3_updates"] = args.updates
out["td3_updates_per_s"] = round(args.updates / seconds, 1)
out["td3_finite"] = not bool(run.agent.nonfinite())
print(f"TD3 ({device}, batch 256, 256-wide, twin critic): {args.updates} updates in {seconds:.2f} s = "
      f"{out['td3_updates_per_s']} updates/s")
print("GPU_SMOKE " + json.dumps(out, sort_keys=True))

problems = []
if not out["td3_finite"]:
    problems.append("TD3 losses are not finite")
if out["frame_mean"] is None:
    problems.append("the EGL render failed")
if args.require_gpu:
    if not out["cuda_available"]:
        problems.append("CUDA is not available")
    if "llvmpipe" in str(out.get("gl_renderer", "")).lower():
        problems.append("EGL rendered in software (llvmpipe): the NVIDIA EGL library was not found")
if problems:
    print("gpu-smoke: FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("gpu-smoke: OK")
PY
