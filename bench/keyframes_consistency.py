#!/usr/bin/env python3
"""How much each key-frame constraint cuts the flow-warped error, over a sweep of content and motion.

For every case of tests/harness/consistency_sweep.py (smooth textures of several cell sizes and
seeds, crops of real frames of ../shared/data/videos; motions from a quarter pixel to 8 px per
frame in all directions; 4 key frames of 64×64) the key frames are rendered with no constraint,
each constraint alone (node defaults) and all four, and the flow-warped MSE between consecutive
rendered key frames (ground-truth motion, nothing occluded) is divided by the unconstrained one.
Prints the ratio per case and configuration, then the median and the worst per configuration, as a
Markdown table. Below 1 is better than no constraint.

The model is the tiny SD1.5-shaped texture denoiser and the motion-keeping VAE the tests use
(trained once, cached where the tests keep it, .cache/test-models/v<N>); 20 DDIM steps, cfg 3, denoise 0.75.

Run: .venv/bin/python bench/keyframes_consistency.py [--cases 0,3,7] [--configs none,pixel]
     [--flow medium|composed|known] [--denoise 0.75] [--steps 20]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import _pack
from harness.consistency_sweep import CASES, CONFIGS, KnownFlow, case_clip, composed_dis_flow, render_errors
from harness.denoiser import trained_tiny_sd15
from harness.host import BOOTSTRAP, InProcessHost, host_root
from harness.models import ModelCache, smoothing_vae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case numbers (default: all)")
    parser.add_argument("--configs", help=f"comma-separated, from: {', '.join(CONFIGS)} (default: all)")
    parser.add_argument("--flow", default="medium",
                        help="the renderer's flow: a DIS preset (ultrafast, fast, medium, fine) estimated between "
                             "key frames, 'composed' (DIS medium between consecutive frames, chained from key to "
                             "key, as with the clip's flow connected) or 'known' (the clip's true motion, to see "
                             "what flow estimation costs)")
    parser.add_argument("--denoise", type=float, default=0.75)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    numbers = [int(n) for n in args.cases.split(",")] if args.cases else list(range(len(CASES)))
    names = args.configs.split(",") if args.configs else list(CONFIGS)
    configs = {"none": CONFIGS["none"], **{name: CONFIGS[name] for name in names}}

    host = InProcessHost(host_root(), Path(tempfile.mkdtemp(prefix="rerender-bench-"))).start()
    logging.getLogger().setLevel(logging.WARNING)   # the host's per-sample model-loading lines
    model, vae = trained_tiny_sd15(ModelCache(BOOTSTRAP.CACHE / "test-models").root), smoothing_vae()
    print(f"flow {args.flow}, {args.steps} steps, denoise {args.denoise}; ratio = flow-warped MSE with the "
          "configuration / with no constraint")
    ratios: dict[str, list[float]] = {name: [] for name in configs if name != "none"}
    header = "| # | case | MSE, none | " + " | ".join(ratios) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    started = time.perf_counter()
    for number in numbers:
        case = CASES[number]
        clip, forward = case_clip(case, _pack.SHARED_DATA)
        flow, options = KnownFlow(clip, case.dx, case.dy) if args.flow == "known" else args.flow, {}
        if args.flow == "composed":
            flow, options = "medium", {"clip_flow": composed_dis_flow(host.pack, clip)}
        errors = render_errors(host, host.pack, model, vae, clip, forward, configs, flow=flow,
                               steps=args.steps, denoise=args.denoise, **options)
        row = []
        for name in ratios:
            ratios[name].append(errors[name] / errors["none"])
            row.append(f"{ratios[name][-1]:.2f}")
        print(f"| {number} | {case.name} | {errors['none']:.6f} | " + " | ".join(row) + " |", flush=True)
    print("| | **median** | | " + " | ".join(f"**{statistics.median(v):.2f}**" for v in ratios.values()) + " |")
    print("| | **worst** | | " + " | ".join(f"**{max(v):.2f}**" for v in ratios.values()) + " |")
    print(f"{len(numbers)} cases in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
