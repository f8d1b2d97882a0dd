#!/usr/bin/env python3
"""Optical-flow speed at 512x512: pairs per second for each DIS preset and RAFT, side by side.

Frames are the first frames of ../shared/data/videos/wolf.mp4 (512x512). For each method it
prints one-way flows per second and bidirectional pairs per second (forward + backward flow and
both occlusion masks: what RerenderOpticalFlow computes per pair of frames), on the CPU and, when
torch sees one, on the GPU. Goal: DIS medium >= 20 pairs/s on 2 CPU cores.

Run: .venv/bin/python bench/flow.py [--pairs N]
"""
from __future__ import annotations

import argparse
import time

import torch

from _pack import SHARED_DATA, plain, script
from harness.media import read_video


def rate(function, repeats: int) -> float:
    function()  # warm-up (allocations, cuDNN autotuning)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs per timed call")
    args = parser.parse_args()
    dis, raft, video_flow = plain("flow.dis"), plain("flow.raft"), plain("flow.video_flow")
    frames = read_video(SHARED_DATA / "videos" / "wolf.mp4", args.pairs + 1)
    a, b = frames[:-1], frames[1:]
    print(f"{a.shape[0]} pairs of {a.shape[-1]}x{a.shape[-2]} frames; torch threads {torch.get_num_threads()}")
    print(f"{'method':<28}{'device':<8}{'flows/s':>10}{'pairs/s':>10}")

    def report(name, device, estimator, repeats):
        one_way = rate(lambda: estimator(a, b), repeats) * a.shape[0]
        pairs = rate(lambda: video_flow.bidirectional_flow(estimator, a, b), repeats) * a.shape[0]
        print(f"{name:<28}{device:<8}{one_way:>10.1f}{pairs:>10.1f}", flush=True)
        return pairs

    results = {}
    for preset in ("ultrafast", "fast", "medium", "fine"):
        results[preset] = report(f"dis_{preset}", "cpu", dis.DisFlow(preset), repeats=3)
    weights = script("raft_weights").ensure_raft_weights()
    for name in ("raft-small.pth", "raft-sintel.pth"):
        model = raft.load_raft(weights[name])
        report(name, "cpu", raft.RaftFlow(model, iterations=12), repeats=1)
        if torch.cuda.is_available():
            model.cuda()
            report(name, "cuda", raft.RaftFlow(model, iterations=12), repeats=5)
            report(name + " fp16", "cuda", raft.RaftFlow(model, half=True, iterations=12), repeats=5)
            model.cpu()
    verdict = "met" if results["medium"] >= 20 else "MISSED"
    print(f"goal DIS medium >= 20 pairs/s on the CPU: {results['medium']:.1f} pairs/s ({verdict})")


if __name__ == "__main__":
    main()
