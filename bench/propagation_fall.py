#!/usr/bin/env python3
"""Where the fall away from the key frames comes from: the pack's fall beside blends that know the truth.

Issue 12 asks the fall from the frames next to a key (distance 1) to the frames farthest from both
keys (distance 5) to be halved. This bench asks how far any blend of the pack's own estimates could
cut it. Per key interval (keys 10 frames apart, frames stylised independently as ground truth, the
two styles of ``bench/propagation.py --styles``, DIS medium flow, CPU) it runs the two chains of the
interval once more and keeps, for every frame, each chain's synthesis S, its key carried along the
flow K and where the key shows the pixel V (propagation/chain.py), then scores, by distance to the
keys:

* ``defaults``: the pack's output (propagation.video.propagate_video, today's settings);
* ``one key alone``: each chain's own output (S mixed with ``warp_share`` of K), scored at distance
  1 and 5 from its key and averaged over the two chains: the fall before any blending;
* three oracles that read the truth, per pixel: ``best side`` (the better of the two chains'
  outputs), ``best mix`` (the convex mix in RGB of the two with the least squared error), ``best of
  six`` (the best of either chain's output, S, and K where its key shows the pixel). No per-pixel
  selection or convex weighting of the two outputs beats ``best mix``, nor any selection among the
  six estimates ``best of six``; the pack's blend (histogram-preserving, in Lab) is not exactly
  such a mix, so for it they are a ceiling measured, not proven. They bound the PSNR at each
  distance, not the fall (an output worse next to the keys falls less); what they show is whether
  knowing which estimate is right helps the farthest frames more than those next to a key;
* ``keys carried along the flow``: the truth's own keys moved along the composed flow
  (harness.propagation_quality.carry_keys_along_flow): how far the truth drifts from its keys;
* with ``--against COMMIT``: the pack's propagation as that commit had it (its tree taken with
  ``git archive``, its default settings, today's DIS flows), e.g. 2f1797e, the last commit before
  issue 12's work.

It prints mean PSNR, next to a key (frames 1 and 9), farthest (frame 5: one frame per
interval-style) and the fall per interval-style and row; then each row's fall (median and worst over
all interval-styles; the two styles of an interval share its frames and flow); the fall that would
remain if the farthest frames reached ``best mix`` while those next to a key kept the defaults'
PSNR; and, with ``--against``, the ratio of the median falls and today's fall minus that commit's.
An interval is clip:first-frame[:stride] (11 frames, every stride-th).

Run: .venv/bin/python bench/propagation_fall.py [--intervals wolf.mp4:10,...] [--against 2f1797e]
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO

import numpy as np
import torch

from _pack import ROOT, SHARED_DATA, plain, propagation_modules
from harness.media import psnr
from harness.propagation_quality import (KEY_SPACING, STYLES, carry_keys_along_flow, disoccluded_pixels,
                                         key_interval_clip, style_scores)

DEFAULT_INTERVALS = ("wolf.mp4:0,wolf.mp4:10,wolf.mp4:29,woman-running.mp4:0,woman-running.mp4:20,"
                     "woman-running.mp4:40,woman-running.mp4:60,woman-running.mp4:80,wolf.mp4:0:2,"
                     "woman-running.mp4:30:2")
ROWS = ("defaults", "one key alone", "best side (oracle)", "best mix (oracle)", "best of six (oracle)",
        "keys carried along the flow")


def chain_estimates(frames: torch.Tensor, flow, key: int, targets: list[int], key_style: torch.Tensor, settings) -> dict:
    """One chain from ``key`` through ``targets`` (consecutive, away from the key), as propagate_video
    runs it: per target its synthesis ``S`` and its key carried along the flow ``K`` ([T, 3, H, W] in
    [0, 1]) and where the key shows the pixel ``V`` ([T, 1, H, W] in [0, 1]).

    ``frames``: [N, 3, H, W] in [0, 1]; ``key_style``: [1, 3, H, W] in [0, 1], the key as the chain
    carries it (without the screen texture). The chain advances with ``warp_share`` 0 and the mix is
    recomputed from S, K and V (``out``, by the pack's own ``mix_carried_key``), which equals the
    pack's only while the temporal guide weighs 0 (the mixed output is what the temporal guide would
    carry)."""
    if settings.weights.temporal != 0:
        raise SystemExit("propagation_fall.py needs the temporal guide's weight 0 (today's default)")
    chain, warp = plain("propagation.chain"), plain("flow.warp").warp
    state = chain.start_chain(frames[key:key + 1] * 255, key_style * 255, settings.synthesis, settings.weights)
    batch = chain.ChainBatch([state])
    to_key, shows = state.to_key, state.key_shows
    estimates = {"S": [], "K": [], "V": []}
    for target in targets:
        if target > key:   # from frame target to target − 1, as propagate_video's forward chains
            step, occluded = flow.backward[target - 1:target], flow.occluded_backward[target - 1:target]
        else:
            step, occluded = flow.forward[target:target + 1], flow.occluded_forward[target:target + 1]
        synthesis, _ = batch.advance(frames[target:target + 1] * 255, step, occluded, settings.synthesis, 0.0)
        to_key, shows = chain.carry_to_key(to_key, shows, step, occluded)
        estimates["S"].append(synthesis / 255)
        estimates["K"].append(warp(state.key_style, to_key) / 255)
        estimates["V"].append(shows)
    estimates = {name: torch.cat(values) for name, values in estimates.items()}
    estimates["out"] = chain.mix_carried_key(estimates["S"], estimates["K"], estimates["V"], settings.warp_share)
    return estimates


def oracle_outputs(a: dict, b: dict, truth: torch.Tensor) -> dict:
    """The three oracle blends of the forward chain ``a`` and the backward chain ``b`` (both indexed
    by the frames between the keys, in clip order, with their outputs ``out``) against ``truth``
    ([T, 3, H, W], in the chains' untextured space: the screen texture is one plane for all
    channels, so it scales each pixel's errors alike and changes no choice). Returns name → [T, 3, H, W]."""
    out_a, out_b = a["out"], b["out"]

    def error(x):
        return (x - truth).pow(2).sum(1, keepdim=True)

    difference = out_a - out_b
    weight = ((truth - out_b) * difference).sum(1, keepdim=True) / difference.pow(2).sum(1, keepdim=True).clamp_min(1e-12)
    six = torch.stack([out_a, a["S"], torch.where(a["V"] > 0.5, a["K"], a["S"]),
                       out_b, b["S"], torch.where(b["V"] > 0.5, b["K"], b["S"])])
    best = torch.stack([error(x) for x in six]).argmin(0, keepdim=True).expand(1, -1, 3, -1, -1)
    return {"best side (oracle)": torch.where(error(out_a) <= error(out_b), out_a, out_b),
            "best mix (oracle)": out_b + weight.clamp(0, 1) * difference,
            "best of six (oracle)": six.gather(0, best)[0]}


def commit_propagation(commit: str, workdir: str):
    """``(frames, keys, key_styles, video_flow) → output``: the pack's propagation at ``commit`` with
    that commit's default settings (its tree extracted with ``git archive`` into ``workdir`` and
    imported under another name)."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", commit], check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(workdir, filter="data")
    name = f"rerender_pack_{commit}"
    spec = importlib.util.spec_from_file_location(name, f"{workdir}/__init__.py", submodule_search_locations=[workdir])
    sys.modules[name] = importlib.util.module_from_spec(spec)
    video = importlib.import_module(f"{name}.propagation.video")

    def propagate(frames, keys, styles, flow):   # today's VideoFlow: the old code reads the same fields
        return video.propagate_video(frames, keys, styles, flow, video.PropagationSettings())
    return propagate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default=DEFAULT_INTERVALS)
    parser.add_argument("--against", help="a commit whose propagation to run beside today's (e.g. 2f1797e)")
    args = parser.parse_args()
    modules = propagation_modules()
    video, compose, warp = modules["video"], modules["compose"], modules["warp"].warp
    screen_texture = plain("propagation.screen_texture")
    settings = video.PropagationSettings()
    workdir = tempfile.TemporaryDirectory() if args.against else None
    against = commit_propagation(args.against, workdir.name) if args.against else None
    rows = ROWS + ((f"pack at {args.against}",) if against else ())
    print(f"keys {KEY_SPACING} frames apart, DIS medium flow, CPU; torch threads {torch.get_num_threads()}")
    print(f"{'interval':<24} {'style':<20} {'row':<30} {'mean':>6} {'next':>6} {'far':>6} {'fall':>5}")
    falls: dict[str, list[float]] = {row: [] for row in rows}
    remaining = []   # defaults next to a key − best mix at the farthest frames
    started = time.perf_counter()
    for interval in args.intervals.split(","):
        clip, first, *stride = interval.split(":")
        frames = key_interval_clip(SHARED_DATA / "videos" / clip, KEY_SPACING + 1, int(first),
                                   int(stride[0]) if stride else 1)
        keys, between = [0, KEY_SPACING], list(range(1, KEY_SPACING))
        flow = modules["video_flow"].estimate_video_flow(frames, modules["dis"].DisFlow("medium"), "dis_medium")
        disoccluded = disoccluded_pixels(flow, keys, compose.key_to_key_flow)
        for style_name, style in STYLES.items():
            truth = style(frames)
            texture = screen_texture.estimate_screen_texture(truth[keys], settings.screen_texture)
            carried_keys = [(truth[k:k + 1] / texture).clamp(0, 1) for k in keys]
            forward = chain_estimates(frames, flow, keys[0], between, carried_keys[0], settings)
            backward = chain_estimates(frames, flow, keys[1], between[::-1], carried_keys[1], settings)
            backward = {name: values.flip(0) for name, values in backward.items()}   # clip order
            outputs = {"defaults": video.propagate_video(frames, keys, truth[keys], flow, settings)}
            for name, estimate in oracle_outputs(forward, backward, truth[between] / texture).items():
                outputs[name] = truth.clone()
                outputs[name][between] = (estimate * texture).clamp(0, 1)
            outputs["keys carried along the flow"] = carry_keys_along_flow(truth, keys, flow, compose.key_to_key_flow, warp)
            if against:
                outputs[rows[-1]] = against(frames, keys, truth[keys], flow)
            scores = {name: style_scores(output, truth, keys, disoccluded) for name, output in outputs.items()}
            alone = {}
            for side, distances in ((forward, (0, 4)), (backward, (8, 4))):   # indices of distance 1 and 5
                own = side["out"] * texture
                for measure, index in zip(("next_to_key", "farthest"), distances):
                    frame = between[index]
                    alone.setdefault(measure, []).append(psnr(own[index].clamp(0, 1), truth[frame]))
            scores["one key alone"] = {"pack": float("nan"), **{m: float(np.mean(v)) for m, v in alone.items()}}
            for row in rows:
                s = scores[row]
                fall = s["next_to_key"] - s["farthest"]
                falls[row].append(fall)
                if row == "best mix (oracle)":
                    remaining.append(scores["defaults"]["next_to_key"] - s["farthest"])
                print(f"{interval:<24} {style_name:<20} {row:<30} {s['pack']:>6.2f} {s['next_to_key']:>6.2f} "
                      f"{s['farthest']:>6.2f} {fall:>5.2f}", flush=True)
    print(f"\nfall, next to a key − farthest, over {len(falls['defaults'])} interval-styles (dB; median / worst):")
    for row in rows:
        values = np.array(falls[row])
        print(f"{row}: {np.median(values):.2f} / {values.max():.2f}")
    remaining = np.array(remaining)
    print(f"defaults next to a key − best mix farthest: {np.median(remaining):.2f} / {remaining.max():.2f}")
    if against:
        old = np.array(falls[rows[-1]])
        change = np.array(falls["defaults"]) - old
        print(f"today's median fall over {args.against}'s: {np.median(falls['defaults']) / np.median(old):.2f}; "
              f"today's fall − {args.against}'s per interval-style: median {np.median(change):+.2f}, worst {change.max():+.2f}"
              f" ({int((old < 0.5).sum())} of its falls under 0.5 dB)")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
