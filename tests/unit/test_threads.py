"""A run's thread budget bounds every native pool: torch's and numpy's OpenBLAS (whose workers spin)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, numpy, torch
from threadpoolctl import threadpool_info
from neuroplastic.threads import limit_threads
def blas():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
before = blas()
limit_threads(1)
print(json.dumps({"before": before, "after": blas(), "torch": torch.get_num_threads()}))
"""


def test_limit_threads_bounds_torch_and_numpys_blas_pool():
    # A fresh process with the machine's default pools (the test suite itself runs with OMP_NUM_THREADS=1).
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"], "numpy loaded no BLAS library that threadpoolctl sees"
    if (os.cpu_count() or 1) > 1:
        assert max(seen["before"]) > 1  # the default pool is machine-sized: the limit has something to do
    assert seen["after"] == [1] * len(seen["before"]) and seen["torch"] == 1
