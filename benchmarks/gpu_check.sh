#!/usr/bin/env bash
# One-go device check on a GPU machine with only the lock installed (pip install -r requirements.lock && pip
# install -e . --no-deps, or the container). Runs, within ~8 minutes:
#   1. the captured-vs-eager equivalence on CUDA (CUDA graphs and torch.compile; tests/unit/test_capture.py),
#   2. the throughput matrix (eager vs CUDA graphs for every agent × method; torch.compile for TD3),
#   3. the sparse-training study's agents (PPO on Hopper, DQN on CartPole and Pong; dense and RigL),
#   4. the packing scan (1, 2, 4, 8, 16 concurrent TD3 processes on the GPU),
# then prints one summary and the compute estimate of config/paper.yaml with these numbers.
# Results: results/gpu_check/<timestamp>/ (throughput.json: pass it to `neuroplastic estimate --measurements`,
# or copy it into src/neuroplastic/analysis/throughput/ to ship it).
#
#   bash benchmarks/gpu_check.sh            # PYTHON=... to pick the interpreter; OUT=... for the results dir
set -uo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-results/gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
export MUJOCO_GL=${MUJOCO_GL:-egl} PYTHONPATH=${PYTHONPATH:-$PWD/src} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$(date +%s)
status=()

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: torch sees no CUDA device; nothing to check" >&2
    exit 2
fi
"$PYTHON" -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__, "CUDA", torch.version.cuda)' | tee "$OUT/device.txt"

step() {  # step NAME TIMEOUT_S COMMAND...: run with a time limit, log to $OUT/NAME.log, record pass/fail
    local name=$1 limit=$2
    shift 2
    echo "gpu_check: $name (limit ${limit}s)"
    if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then
        status+=("$name: ok")
    else
        status+=("$name: FAILED (exit $?; see $OUT/$name.log)")
    fi
    tail -n 3 "$OUT/$name.log"
}

step equivalence 100 "$PYTHON" -m pytest -q -p no:cacheprovider tests/unit/test_capture.py -k cuda
step throughput 140 "$PYTHON" benchmarks/throughput.py --device cuda --modes off,graphs --repeats 3 --block 200 \
    --loop-steps 150 --packing "" --out "$OUT/throughput-matrix.json"
step compile 60 "$PYTHON" benchmarks/throughput.py --device cuda --modes off,compile --agents td3 --methods none \
    --repeats 3 --block 200 --loop-steps 0 --packing "" --out "$OUT/throughput-compile.json"
step study 80 "$PYTHON" benchmarks/throughput.py --device cuda --modes off,graphs --agents ppo,dqn,dqn-atari \
    --methods none,rigl --repeats 2 --block 100 --loop-steps 150 --packing "" --out "$OUT/throughput-study.json"
step packing 90 "$PYTHON" benchmarks/throughput.py --device cuda --modes graphs --agents td3 --methods none \
    --repeats 1 --block 50 --loop-steps 0 --packing 1,2,4,8,16 --packing-seconds 10 --out "$OUT/throughput-packing.json"

# One JSON for the estimate: the matrix, plus the compile rows and the packing scan.
"$PYTHON" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None
merged = load("throughput-matrix.json")
if merged is not None:
    compiled, packing = load("throughput-compile.json"), load("throughput-packing.json")
    if compiled:
        merged["updates"] += [r for r in compiled["updates"] if r["mode"] == "compile"]
    study = load("throughput-study.json")
    if study:
        merged["updates"] += study["updates"]
        merged["loop"] += study["loop"]
    if packing:
        merged["packing"] = packing["packing"]
    (out / "throughput.json").write_text(json.dumps(merged, indent=2) + "\n")
EOF

echo
echo "================ gpu_check summary ($(($(date +%s) - start)) s) ================"
cat "$OUT/device.txt"
printf '%s\n' "${status[@]}"
grep -E "passed|failed|error" "$OUT/equivalence.log" | tail -n 1
for f in throughput compile study packing; do
    sed -n '/^throughput on/,$p' "$OUT/$f.log" | grep -v "^wrote"
done
if [ -f "$OUT/throughput.json" ]; then
    "$PYTHON" -m neuroplastic.cli estimate --configfile config/paper.yaml --measurements "$OUT/throughput.json" \
        --runs-per-gpu 8 | head -n 4
    "$PYTHON" -m neuroplastic.cli estimate --configfile config/paper.yaml --measurements "$OUT/throughput.json" \
        --runs-per-gpu 8 | grep -E "^part:|^total"
    echo "results: $OUT/throughput.json (neuroplastic estimate --measurements $OUT/throughput.json)"
fi
case "${status[*]}" in *FAILED*) exit 1 ;; esac
