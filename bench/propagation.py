#!/usr/bin/env python3
"""Key-frame propagation on ../shared/data/videos/wolf.mp4: quality and speed, in one run.

Ground truth: cv2.stylization(frame, sigma_s=60, sigma_r=0.45) of every frame. The pack gets the
raw video and the stylised frames at keys 0, 10, 20, 30 (default settings, DIS medium flow) and
fills in the rest. Prints the PSNR of every propagated frame against the ground truth, beside
copying the nearest key, the mean over frames 1-29 that are not keys (goal >= 27 dB), and seconds
per frame per direction on the CPU (goal <= 2.5 s at 512x512) and, when torch sees one, the GPU
(goal <= 0.05 s).

Run: .venv/bin/python bench/propagation.py
"""
from __future__ import annotations

import time

import numpy as np
import torch

from _pack import SHARED_DATA, plain
from harness.media import psnr, read_video, stylize

KEYS = [0, 10, 20, 30]


def main() -> None:
    video, flow_module, dis = plain("propagation.video"), plain("flow.video_flow"), plain("flow.dis")
    frames = read_video(SHARED_DATA / "videos" / "wolf.mp4")
    truth = stylize(frames)
    count, (height, width) = frames.shape[0], frames.shape[-2:]
    started = time.perf_counter()
    flow = flow_module.estimate_video_flow(frames, dis.DisFlow("medium"), "dis_medium")
    flow_seconds = time.perf_counter() - started
    syntheses = sum(2 if KEYS[0] < j < KEYS[-1] else 1 for j in range(count) if j not in KEYS)
    print(f"wolf.mp4: {count} frames of {width}x{height}, keys {KEYS}; {syntheses} frame syntheses "
          f"(two directions between keys, one after the last); torch threads {torch.get_num_threads()}")
    print(f"optical flow (DIS medium, both directions): {flow_seconds:.1f} s for the clip")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    outputs = {}
    for device in devices:
        settings = video.PropagationSettings(chains_per_batch=8 if device == "cuda" else 1)
        started = time.perf_counter()
        outputs[device] = video.propagate_video(frames.to(device), KEYS, truth[KEYS].to(device), flow, settings)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        goal = 0.05 if device == "cuda" else 2.5
        per = seconds / syntheses
        print(f"propagation on {device}: {seconds:.1f} s, {per:.3f} s per frame per direction "
              f"(goal <= {goal} s: {'met' if per <= goal else 'MISSED'})")

    output = outputs["cpu"]
    print(f"{'frame':>5} {'propagated':>11} {'nearest key':>12}")
    scores = []
    for j in range(1, KEYS[-1]):
        if j in KEYS:
            continue
        nearest = min(KEYS, key=lambda k: abs(k - j))
        scores.append(psnr(output[j], truth[j]))
        print(f"{j:>5} {scores[-1]:>10.2f}  {psnr(truth[nearest], truth[j]):>11.2f}")
    mean = float(np.mean(scores))
    print(f"mean PSNR, frames 1-29 that are not keys: {mean:.2f} dB (goal >= 27 dB: {'met' if mean >= 27 else 'MISSED'})")


if __name__ == "__main__":
    main()
