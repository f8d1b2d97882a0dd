#!/usr/bin/env python3
"""Everything this pack checks on a CUDA GPU, in one command (a lent GPU machine, under 8 minutes).

1. the tests marked gpu (key frames with all four constraints on a CUDA fp16 UNet and fp16
   ControlNet, propagation on CUDA against the CPU, no host syncs in synthesis, RAFT on CUDA);
2. propagation: seconds per frame per direction and peak device memory at 512x512 and 1280x720,
   300 frames each (bench/propagation.py's long-clip run);
3. RAFT pairs per second (bench/flow.py);
4. key frames at 512x512 with all four constraints against plain KSampler with the same passes,
   and the stored attention feature bytes (bench/keyframes.py --size 512).

Run with the project's Python on the GPU machine: python bench/gpu_check.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, RERENDER_TEST_DEVICE="cuda", PYTHONUNBUFFERED="1")


def step(title: str, *command: str) -> int:
    print(f"\n== {title}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    code = subprocess.run([sys.executable, *command], cwd=ROOT, env=ENV).returncode
    print(f"== {title}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
    return code


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA GPU here")
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    codes = [
        step("tests marked gpu", "-m", "pytest", "-m", "gpu", "-q", "-s", "tests/test_gpu.py"),
        step("propagation, long clips", "bench/propagation.py", "--long", "--gpu-sizes"),
        step("optical flow", "bench/flow.py"),
        step("key frames", "bench/keyframes.py", "--size", "512", "--frames", "3", "--steps", "20"),
    ]
    if any(codes):
        raise SystemExit(f"gpu_check: a step failed (exit codes {codes})")


if __name__ == "__main__":
    main()
