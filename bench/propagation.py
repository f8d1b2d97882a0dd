#!/usr/bin/env python3
"""Key-frame propagation on ../shared/data/videos/wolf.mp4: quality and speed, in one run.

Ground truth: cv2.stylization(frame, sigma_s=60, sigma_r=0.45) of every frame. The pack gets the
raw video and the stylised frames at keys 0, 10, 20, 30 (default settings, DIS medium flow) and
fills in the rest. Prints the PSNR of every propagated frame against the ground truth, beside
copying the nearest key, the mean over frames 1-29 that are not keys (goal >= 27 dB), and seconds
per frame per direction on the CPU (goal <= 2.5 s at 512x512) and, when torch sees one, the GPU
(goal <= 0.05 s).

With ``--long``: peak memory of long clips instead, 60 and 300 frames of 512x512 side by side
(woman-running.mp4 played forth and back to the length, keys every 10 frames, flow computed
beforehand): resident memory beyond the inputs and the output on the CPU, and on CUDA (when torch
sees a GPU) the peak device memory of the propagation's own tensors.

With ``--styles``: quality for two styles on wolf.mp4 (its first 31 frames) and woman-running.mp4
(its first 41), keys every 10 frames from 0 to the last frame, on the CPU: cv2.stylization as
above, and the same times a fixed screen-space paper grain (harness.media.stylize_with_grain) that
does not move with the scene. Prints a Markdown table of the mean PSNR of the non-key frames for the
pack and for copying the nearest key; the pack's PSNR next to a key (distance 1) and farthest from
both (distance 5) and the fall between them; the pooled PSNR of the disoccluded pixels (visible in
neither neighbouring key, after the clip's composed flow) for both, and their share of the non-key
pixels; and seconds per frame per direction. Each case three times: the defaults (blend weights:
distance to each key times the other side's patch error; the screen-fixed texture separated,
propagation/screen_texture.py), the same without the separation, and without it with the
reference's blend weights (distance only) and colour-guide weight (6 instead of 12).

Run: .venv/bin/python bench/propagation.py [--long | --styles]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import torch

from _pack import SHARED_DATA, plain, propagation_modules
from harness import memory, memory_probe
from harness.media import psnr, read_video, stylize
from harness.propagation_quality import KEY_SPACING, key_interval_clip, measure_settings

KEYS = [0, 10, 20, 30]
LONG_LENGTHS = (60, 300)
STYLE_CLIPS = ("wolf.mp4", "woman-running.mp4")
# Keys 0 … 40: bounds the CPU time on woman-running.mp4's 120 frames.
STYLE_MAX_FRAMES = 41


def synthesis_count(count: int, keys: list[int]) -> int:
    """Frame syntheses of a ``count``-frame clip: two directions between keys, one outside them."""
    return sum(2 if keys[0] < j < keys[-1] else 1 for j in range(count) if j not in keys)


def ping_pong(frames: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` frames of a clip played forwards, backwards, forwards... (no jump at the turns)."""
    order, step, index = [], 1, 0
    while len(order) < count:
        order.append(index)
        if not 0 <= index + step < frames.shape[0]:
            step = -step
        index += step
    return frames[order]


def long_clip_memory(count: int, device: str, size: tuple[int, int] | None = None) -> dict:
    """Propagate a ``count``-frame clip (keys every 10 frames) on ``device``; return its time and peak memory.

    ``size`` (height, width) resizes woman-running.mp4's 512x512 frames, e.g. to 720x1280.
    """
    video, flow_module, dis = plain("propagation.video"), plain("flow.video_flow"), plain("flow.dis")
    frames = ping_pong(read_video(SHARED_DATA / "videos" / "woman-running.mp4"), count)
    if size is not None:
        frames = torch.nn.functional.interpolate(frames, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    keys = list(range(0, count, 10)) + ([count - 1] if (count - 1) % 10 else [])
    styles = stylize(frames[keys])
    flow = flow_module.estimate_video_flow(frames, dis.DisFlow("medium"), "dis_medium")
    syntheses = synthesis_count(count, keys)
    per_chain = video.device_bytes_per_chain(*frames.shape[-2:])
    chains = 1
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        chains = max(1, min(8, int(free * 0.8 // per_chain)))
        frames, styles = frames.pin_memory(), styles.pin_memory()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    settings = video.PropagationSettings(chains_per_batch=chains)
    started = time.perf_counter()
    output, growth = memory.peak_growth(lambda: video.propagate_video(frames, keys, styles, flow, settings, device=device))
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {"frames": count, "size": tuple(frames.shape[-2:]), "chains": chains, "seconds": seconds,
              "per_frame": seconds / syntheses, "estimate_per_chain": per_chain,
              "host_working": growth - output.numel() * output.element_size()}
    if device == "cuda":
        result["device_peak"] = torch.cuda.max_memory_allocated() - baseline
    return result


def print_long(results: list[dict]) -> None:
    mib = 2 ** 20
    print(f"{'frames':>6} {'size':>10} {'chains':>6} {'s/frame/dir':>12} {'host working MiB':>17} {'device peak MiB':>16}")
    for r in results:
        device_peak = f"{r['device_peak'] / mib:>16.1f}" if "device_peak" in r else f"{'-':>16}"
        print(f"{r['frames']:>6} {r['size'][1]:>4}x{r['size'][0]:<5} {r['chains']:>6} {r['per_frame']:>12.3f} "
              f"{r['host_working'] / mib:>17.1f} {device_peak}")


def main_styles() -> None:
    modules = propagation_modules()
    video = modules["video"]
    default = video.PropagationSettings(chains_per_batch=1)
    without_carried_key = dataclasses.replace(default, warp_share=0.0,
                                              weights=dataclasses.replace(default.weights, temporal=0.5))
    blends = {"defaults": default,
              "no carried key, temporal weight 0.5": without_carried_key,
              "also no screen texture": dataclasses.replace(without_carried_key, screen_texture=0.0),
              "also distance only, colour weight 6 (the reference's)": dataclasses.replace(
                  without_carried_key, error_blend=0.0, screen_texture=0.0,
                  weights=dataclasses.replace(without_carried_key.weights, color=6.0))}
    if os.environ.get("STYLES_ROWS"):   # e.g. STYLES_ROWS=2: the first rows only
        blends = dict(list(blends.items())[:int(os.environ["STYLES_ROWS"])])
    print(f"propagation on cpu, default settings, DIS medium flow; torch threads {torch.get_num_threads()}")
    clips = {name: key_interval_clip(SHARED_DATA / "videos" / name, STYLE_MAX_FRAMES) for name in STYLE_CLIPS}
    for name, frames in clips.items():
        print(f"{name}: {frames.shape[0]} frames of {frames.shape[-1]}x{frames.shape[-2]}, "
              f"keys {list(range(0, frames.shape[0], KEY_SPACING))}")
    # Each row is printed (and flushed) as soon as it is measured, so a run stopped part way
    # still leaves the rows it finished, already in the table.
    print()
    print("| clip | style | settings | pack mean (dB) | copy-nearest mean (dB) | pack next-to-key (dB) "
          "| pack farthest (dB) | fall, next − farthest (dB) | pack disoccluded (dB) | copy disoccluded (dB) "
          "| disoccluded share | s/frame/dir |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for name, frames in clips.items():
        for style_name, blend_name, s, per_frame in measure_settings(frames, blends, modules):
            print(f"| {name} | {style_name} | {blend_name} | {s['pack']:.2f} | {s['copy']:.2f} "
                  f"| {s['next_to_key']:.2f} | {s['farthest']:.2f} | {s['next_to_key'] - s['farthest']:.2f} "
                  f"| {s['pack_disoccluded']:.2f} | {s['copy_disoccluded']:.2f} "
                  f"| {100 * s['disoccluded_share']:.1f} % | {per_frame:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--long", action="store_true", help="peak memory of 60- and 300-frame clips instead")
    mode.add_argument("--styles", action="store_true",
                      help="two styles on wolf.mp4 and woman-running.mp4: PSNR by distance to the keys, "
                           "on disoccluded pixels, beside copying the nearest key")
    parser.add_argument("--gpu-sizes", action="store_true",
                        help="with --long: CUDA only, 300 frames at 512x512 and at 1280x720 (bench/gpu_check.py)")
    args = parser.parse_args()
    if args.long:
        return main_long(args.gpu_sizes)
    if args.styles:
        return main_styles()
    video, flow_module, dis = plain("propagation.video"), plain("flow.video_flow"), plain("flow.dis")
    frames = read_video(SHARED_DATA / "videos" / "wolf.mp4")
    truth = stylize(frames)
    count, (height, width) = frames.shape[0], frames.shape[-2:]
    started = time.perf_counter()
    flow = flow_module.estimate_video_flow(frames, dis.DisFlow("medium"), "dis_medium")
    flow_seconds = time.perf_counter() - started
    syntheses = synthesis_count(count, KEYS)
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


def main_long(gpu_sizes: bool = False) -> None:
    if not memory.available():
        raise SystemExit("--long needs Linux's /proc/self/clear_refs to read peak resident memory")
    if any(os.environ.get(k) != v for k, v in memory_probe.PROBE_ENV.items()):
        # freed tensors must leave resident memory at once, or the peak shows the allocator's history
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **memory_probe.PROBE_ENV))
    if gpu_sizes:
        results = [long_clip_memory(LONG_LENGTHS[-1], "cuda"), long_clip_memory(LONG_LENGTHS[-1], "cuda", (720, 1280))]
        print(f"propagation on cuda ({torch.cuda.get_device_name(0)}), {LONG_LENGTHS[-1]} frames, keys every 10:")
        print_long(results)
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"woman-running.mp4 played forth and back, 512x512, keys every 10 frames; torch threads {torch.get_num_threads()}")
    for device in devices:
        print(f"propagation on {device}:")
        results = [long_clip_memory(count, device) for count in LONG_LENGTHS]
        print_long(results)
        ratio = results[-1]["host_working"] / results[0]["host_working"]
        print(f"host working memory, {LONG_LENGTHS[-1]} vs {LONG_LENGTHS[0]} frames: {ratio:.2f}x")
        if device == "cuda":
            print(f"device peak, {LONG_LENGTHS[-1]} vs {LONG_LENGTHS[0]} frames: "
                  f"{results[-1]['device_peak'] / results[0]['device_peak']:.2f}x")


if __name__ == "__main__":
    main()
