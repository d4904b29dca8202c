"""GPU pinning for runs that share a workstation's GPUs: least loaded first, dead holders freed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from neuroplastic import gpu_slots


def test_claims_spread_over_gpus_and_respect_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    claims = [gpu_slots.claim(tmp_path, gpus=2) for _ in range(4)]
    assert [c.device for c in claims] == ["0", "1", "0", "1"]
    heavy = gpu_slots.claim(tmp_path, gpus=2, weight=3)  # both GPUs hold 2: lowest index
    assert heavy.device == "0"
    light = [gpu_slots.claim(tmp_path, gpus=2) for _ in range(4)]  # loads 5 vs 2: GPU 1 until it holds 5
    assert [c.device for c in light] == ["1", "1", "1", "0"]
    for c in claims:
        c.release()
    assert not claims[0].holder.exists()
    assert gpu_slots.claim(tmp_path, gpus=2).device == "1"  # released two each: GPU 0 holds 3 + 1, GPU 1 holds 3


def test_existing_visible_devices_are_the_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    held = [gpu_slots.claim(tmp_path, gpus=2) for _ in range(3)]
    assert [c.device for c in held] == ["3", "5", "3"]
    with pytest.raises(gpu_slots.GpuSlotError, match="names only 3"):
        gpu_slots.claim(tmp_path, gpus=4)


def test_a_killed_holder_frees_its_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    script = textwrap.dedent(
        f"""
        import os, sys
        from neuroplastic import gpu_slots
        got = gpu_slots.pin_process({str(tmp_path)!r}, 2)
        print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
        sys.stdin.read()
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "0"
    assert gpu_slots.claim(tmp_path, gpus=2).device == "1"  # GPU 0 is held by the live process
    holder.kill()
    holder.wait()
    assert gpu_slots.claim(tmp_path, gpus=2).device == "0"  # its lock died with it
    assert len(list((tmp_path / "gpu0").iterdir())) == 1
