#!/usr/bin/env python3
"""Optical flow: speed of each estimator, and key-to-key accuracy of composed versus direct flow.

Speed (at 512x512): frames are the first frames of ../shared/data/videos/wolf.mp4. For each
method it prints one-way flows per second and bidirectional pairs per second (forward + backward
flow and both occlusion masks: what RerenderOpticalFlow computes per pair of frames), on the CPU
and, when torch sees one, on the GPU. Goal: DIS medium >= 20 pairs/s on 2 CPU cores.

Key to key (``key_to_key``; at 256x256 by default): a synthetic clip with known motion. The first
frame of wolf.mp4 is the background, moved along a curved path at 3-8 px per frame (speed and
direction change every frame, sub-pixel, sampled bicubically); a disc textured with a frame of
woman-running.mp4 moves on its own path on top and hides part of it. For key pairs 5, 10 and 20
frames apart (both directions) it compares the flow estimated directly between the two key frames
with the flow composed from the clip's consecutive flows (flow/compose.py), for DIS medium and
RAFT (raft-sintel). End-point error is averaged over the pixels whose ground truth is known: the
background visible in both key frames (not under the disc in either, and inside both frames).
A second table splits the composed error: the share of those pixels hidden in some frame between
the keys (under the disc, or out of the frame: no chain of consecutive flows can follow them),
the share the chain flags as occluded (compose's mask), the errors of both flows on the pixels
visible all along, the composed error where the chain flags nothing, and the error of the
composed flow with the direct one filled in where the chain flags occlusion. Goal (issue 12):
composed DIS at 10 frames apart has at most half the error of direct DIS.

Run: .venv/bin/python bench/flow.py [--only speed|key-to-key] [--pairs N] [--size S]
(both parts by default).
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from _pack import SHARED_DATA, plain, script
from harness.media import read_video
from harness.synthetic import sample_at

KEY_GAPS = (5, 10, 20)
CLIP_FRAMES = 25
# Key pairs of each gap start every KEY_STRIDE frames, so every gap has several pairs.
KEY_STRIDE = 3
DISC_RADIUS_SHARE = 0.16   # of the frame side
# Pixels within this distance of the disc's edge are mixtures of disc and background (antialiasing).
DISC_EDGE_PX = 1.5


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


def speed(pair_count: int) -> None:
    dis, raft, video_flow = plain("flow.dis"), plain("flow.raft"), plain("flow.video_flow")
    frames = read_video(SHARED_DATA / "videos" / "wolf.mp4", pair_count + 1)
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


def curved_path(frames: int, speed_phase: float, heading: float, turn: float) -> torch.Tensor:
    """Positions [frames, 2] (x, y) from 0: each step 3-8 px long, its speed and heading changing
    every frame (the heading turns by ``turn`` rad per frame on average, with a wobble)."""
    t = torch.arange(frames - 1, dtype=torch.float64)
    speeds = 5.5 + 2.5 * torch.sin(0.9 * t + speed_phase)
    headings = heading + turn * t + 0.3 * torch.sin(0.5 * t)
    steps = torch.stack((speeds * torch.cos(headings), speeds * torch.sin(headings)), dim=1)
    return torch.cat((torch.zeros(1, 2, dtype=torch.float64), steps.cumsum(0)))


def moving_photo_clip(size: int):
    """The key-to-key clip: a photograph moving along a curved path, a textured disc on top.

    Frame t shows the background photo at x + camera[t] (so background content moves by
    camera[a] − camera[b] from frame a to frame b) and, on top, the disc of radius ``radius``
    centred at disc[t], whose texture moves with it.

    Returns:
        (frames [N, 3, size, size] RGB in [0, 1], camera [N, 2] and disc [N, 2] positions in
        pixels (float64), radius).
    """
    photo = read_video(SHARED_DATA / "videos" / "wolf.mp4", 1)
    texture = read_video(SHARED_DATA / "videos" / "woman-running.mp4", 1)
    camera = curved_path(CLIP_FRAMES, speed_phase=0.3, heading=0.4, turn=0.13)
    # Centre the camera's path in the photo; the window must stay inside it.
    room = torch.tensor([photo.shape[-1] - size, photo.shape[-2] - size], dtype=torch.float64)
    camera = camera + (room - camera.amax(0) - camera.amin(0)) / 2
    if camera.amin() < 0 or (camera > room).any():
        raise ValueError(f"the camera path does not fit into the {photo.shape[-1]}px photo at {size}px frames")
    # The disc crosses the frame against the camera's motion, on a curve of its own.
    disc = curved_path(CLIP_FRAMES, speed_phase=2.0, heading=math.pi - 0.2, turn=-0.08) * size / 256
    disc = disc + torch.tensor([0.85, 0.3], dtype=torch.float64) * size
    radius = DISC_RADIUS_SHARE * size
    xs, ys = plain("flow.warp").pixel_grid(size, size, dtype=torch.float64)[0]
    texture_anchor = torch.tensor([400.0, 300.0], dtype=torch.float64)   # the grass and the path beside it
    frames = []
    for t in range(CLIP_FRAMES):
        background = sample_at(photo, xs + camera[t, 0], ys + camera[t, 1])
        dx, dy = xs - disc[t, 0], ys - disc[t, 1]
        foreground = sample_at(texture, texture_anchor[0] + dx, texture_anchor[1] + dy)
        coverage = (radius + 0.5 - torch.hypot(dx, dy)).clamp(0, 1).float()[None, None]
        frames.append(coverage * foreground + (1 - coverage) * background)
    return torch.cat(frames), camera, disc, radius


def background_ground_truth(camera, disc, radius: float, size: int, source: int, target: int):
    """Exact background flow source → target and which pixels of the source it holds for.

    Returns:
        (flow [1, 2, size, size] float32, measured [size, size] bool: background in both frames
        (clear of the disc's edge in either) that lands inside the target frame, visible_all_along
        [size, size] bool: the measured pixels that stay in view in every frame in between too).
    """
    xs, ys = plain("flow.warp").pixel_grid(size, size, dtype=torch.float64)[0]

    def in_view(frame: int) -> torch.Tensor:
        x, y = xs + camera[source, 0] - camera[frame, 0], ys + camera[source, 1] - camera[frame, 1]
        inside = (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)
        return inside & (torch.hypot(x - disc[frame, 0], y - disc[frame, 1]) > radius + DISC_EDGE_PX)

    measured = in_view(source) & in_view(target)
    visible_all_along = measured.clone()
    for frame in range(min(source, target) + 1, max(source, target)):
        visible_all_along &= in_view(frame)
    flow = (camera[source] - camera[target]).float().view(1, 2, 1, 1).expand(1, 2, size, size)
    return flow, measured, visible_all_along


class ErrorSum:
    """End-point errors summed over pixels, for a mean over all pairs of a gap."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, flow: torch.Tensor, truth: torch.Tensor, pixels: torch.Tensor) -> None:
        self.total += plain("flow.warp").magnitude(flow.cpu() - truth)[0, 0][pixels].sum().item()
        self.count += int(pixels.sum())

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)


def key_pairs(gap: int):
    """(source, target) key pairs ``gap`` frames apart, both ways."""
    for a in range(0, CLIP_FRAMES - gap, KEY_STRIDE):
        yield a, a + gap
        yield a + gap, a


def measure_gap(estimator, clip_flow, frames, camera, disc, radius: float, gap: int) -> dict[str, float]:
    """Mean end-point errors (px) and shares (%) over the key pairs ``gap`` frames apart."""
    compose = plain("flow.compose")
    size = frames.shape[-1]
    errors = {name: ErrorSum() for name in ("direct", "composed", "direct all along", "composed all along",
                                            "composed not flagged", "composed else direct")}
    measured_count = hidden_on_the_way = flagged = 0
    for source, target in key_pairs(gap):
        truth, measured, all_along = background_ground_truth(camera, disc, radius, size, source, target)
        direct = estimator(frames[source:source + 1], frames[target:target + 1])
        composed, occluded = compose.key_to_key_flow(clip_flow, source, target)
        composed, not_flagged = composed.cpu(), occluded[0, 0].cpu() == 0
        errors["direct"].add(direct, truth, measured)
        errors["composed"].add(composed, truth, measured)
        errors["direct all along"].add(direct, truth, all_along)
        errors["composed all along"].add(composed, truth, all_along)
        errors["composed not flagged"].add(composed, truth, measured & not_flagged)
        errors["composed else direct"].add(torch.where(not_flagged, composed, direct), truth, measured)
        measured_count += int(measured.sum())
        hidden_on_the_way += int((measured & ~all_along).sum())
        flagged += int((measured & ~not_flagged).sum())
    return {**{name: error.mean for name, error in errors.items()},
            "hidden %": 100 * hidden_on_the_way / measured_count, "flagged %": 100 * flagged / measured_count}


def key_to_key(size: int) -> None:
    dis, raft, video_flow = plain("flow.dis"), plain("flow.raft"), plain("flow.video_flow")
    frames, camera, disc, radius = moving_photo_clip(size)
    steps = torch.linalg.vector_norm(camera.diff(dim=0), dim=1)
    disc_speed = torch.linalg.vector_norm(disc.diff(dim=0), dim=1).mean()
    print(f"\nKey to key: {CLIP_FRAMES} frames of {size}x{size}, background moving {steps.min():.1f}-{steps.max():.1f} "
          f"px per frame, disc of radius {radius:.0f} px moving {disc_speed:.1f} px per frame")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    raft_model = raft.load_raft(script("raft_weights").ensure_raft_weights()["raft-sintel.pth"]).to(device)
    estimators = {"dis_medium": (dis.DisFlow("medium"), "cpu"),
                  "raft-sintel": (raft.RaftFlow(raft_model, iterations=12), device)}
    results = {}
    for method, (estimator, runs_on) in estimators.items():
        started = time.perf_counter()
        clip_flow = video_flow.estimate_video_flow(frames, estimator, method)
        for gap in KEY_GAPS:
            results[method, gap] = measure_gap(estimator, clip_flow, frames, camera, disc, radius, gap)
        print(f"{method}: {time.perf_counter() - started:.0f} s on {runs_on}", flush=True)

    print("\nEnd-point error (px) on the background visible in both key frames:\n")
    print("| method | gap | EPE direct | EPE composed | ratio |\n|---|---|---|---|---|")
    for (method, gap), r in results.items():
        print(f"| {method} | {gap} | {r['direct']:.2f} | {r['composed']:.2f} | {r['composed'] / r['direct']:.2f} |")
    print("\nWhere the composed error comes from: pixels hidden (by the disc or the frame edge) in a frame "
          "between the keys,\nwhich no chain of consecutive flows can follow (% of the pixels measured above):\n")
    print("| method | gap | hidden on the way | chain flags occluded | EPE direct, visible all along "
          "| EPE composed, visible all along | EPE composed, not flagged | EPE composed, direct where flagged |")
    print("|---|---|---|---|---|---|---|---|")
    for (method, gap), r in results.items():
        print(f"| {method} | {gap} | {r['hidden %']:.1f} % | {r['flagged %']:.1f} % | {r['direct all along']:.2f} "
              f"| {r['composed all along']:.2f} | {r['composed not flagged']:.2f} | {r['composed else direct']:.2f} |")
    dis_10 = results["dis_medium", 10]
    ratio = dis_10["composed"] / dis_10["direct"]
    print(f"\ngoal composed DIS medium at 10 frames apart <= 0.5x direct: {ratio:.2f}x "
          f"({'met' if ratio <= 0.5 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("speed", "key-to-key"), help="run one part (default: both)")
    parser.add_argument("--pairs", type=int, default=8, help="speed: frame pairs per timed call")
    parser.add_argument("--size", type=int, default=256,
                        help="key to key: frame side in pixels (up to 420: the path must fit into the 512 px photo)")
    args = parser.parse_args()
    if args.only in (None, "speed"):
        speed(args.pairs)
    if args.only in (None, "key-to-key"):
        key_to_key(args.size)


if __name__ == "__main__":
    main()
