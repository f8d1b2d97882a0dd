#!/usr/bin/env python3
"""Propagation settings side by side: which search and blend changes raise PSNR, and at what cost.

Each listed setting is run beside the defaults, in one process, on the same key intervals (keys 10
frames apart, frames stylised independently as ground truth, DIS medium flow, CPU): for both styles
of ``bench/propagation.py --styles`` it prints the mean PSNR of the non-key frames, next to a key,
farthest from both keys, on disoccluded pixels, the steadiness along the flow (PSNR of each frame
against the one before carried by the flow, on visible pixels; the truth's own beside it: PSNR
against frames stylised one at a time cannot see flicker) and seconds per frame per direction, then
the mean change against the defaults over all intervals and styles, and the worst (lowest) change.
Per interval and style it also prints the truth's key frames carried along the clip's flow
(harness.propagation_quality.carry_keys_along_flow), and at the end the fall from next-to-key to
farthest of the defaults and of that baseline: how much of the fall the style's own change along
the motion (and the flow's error) makes.

A setting is a JSON object of SynthesisSettings fields, GuideWeights fields (the guides' weights:
color, edge, temporal, positional, style) and PropagationSettings.error_blend or .screen_texture,
e.g. ``'{"search_radius": 64}'`` or ``'{"temporal": 0}'``. Intervals are clip:first-frame (11 frames from there).

Run: .venv/bin/python bench/propagation_settings.py [--intervals wolf.mp4:0,woman-running.mp4:20] SETTING...
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch

from _pack import SHARED_DATA, plain, propagation_modules
from harness.propagation_quality import KEY_SPACING, key_interval_clip, measure_settings

MEASURES = ("pack", "next_to_key", "farthest", "pack_disoccluded", "steadiness")
PROPAGATION_FIELDS = ("error_blend", "screen_texture", "warp_share")
DEFAULT_INTERVALS = "wolf.mp4:0,woman-running.mp4:0,woman-running.mp4:20"


def settings_from(overrides: dict):
    video, synthesis = plain("propagation.video"), plain("propagation.synthesis")
    default = video.PropagationSettings()
    synthesis_fields = {f.name for f in dataclasses.fields(synthesis.SynthesisSettings)}
    weight_fields = {f.name for f in dataclasses.fields(plain("propagation.guides").GuideWeights)}
    unknown = set(overrides) - synthesis_fields - weight_fields - set(PROPAGATION_FIELDS)
    if unknown:
        raise SystemExit(f"unknown setting(s) {sorted(unknown)}: use SynthesisSettings or GuideWeights fields, or "
                         f"{', '.join(PROPAGATION_FIELDS)}")
    synth = dataclasses.replace(default.synthesis, **{k: tuple(v) if isinstance(v, list) else v
                                                      for k, v in overrides.items() if k in synthesis_fields})
    weights = dataclasses.replace(default.weights, **{k: v for k, v in overrides.items() if k in weight_fields})
    return dataclasses.replace(default, synthesis=synth, weights=weights,
                               **{k: v for k, v in overrides.items() if k in PROPAGATION_FIELDS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default=DEFAULT_INTERVALS)
    parser.add_argument("settings", nargs="+", help="JSON objects of settings to compare with the defaults")
    args = parser.parse_args()
    modules = propagation_modules()
    configs = {"defaults": settings_from({})} | {text: settings_from(json.loads(text)) for text in args.settings}
    print(f"propagation on cpu, DIS medium flow, keys {KEY_SPACING} frames apart; torch threads {torch.get_num_threads()}")
    print(f"{'interval':<22} {'style':<20} {'setting':<34} {'mean':>6} {'next':>6} {'far':>6} {'disocc':>7} {'steady':>6} {'truth':>6} {'s/f/dir':>8}")
    results = {name: [] for name in configs}
    falls = []   # (defaults, keys carried along the flow): next-to-key minus farthest, dB
    for interval in args.intervals.split(","):
        clip, first = interval.split(":")
        frames = key_interval_clip(SHARED_DATA / "videos" / clip, KEY_SPACING + 1, int(first))
        for style_name, name, scores, seconds in measure_settings(frames, configs, modules):
            results[name].append([scores[m] for m in MEASURES] + [seconds])
            print(f"{interval:<22} {style_name:<20} {name:<34} {scores['pack']:>6.2f} {scores['next_to_key']:>6.2f} "
                  f"{scores['farthest']:>6.2f} {scores['pack_disoccluded']:>7.2f} {scores['steadiness']:>6.2f} "
                  f"{scores['truth_steadiness']:>6.2f} {seconds:>8.2f}", flush=True)
            if name == "defaults":   # the baseline does not depend on the setting: once per interval-style
                falls.append((scores["next_to_key"] - scores["farthest"],
                              scores["carried_next_to_key"] - scores["carried_farthest"]))
                print(f"{interval:<22} {style_name:<20} {'keys carried along the flow':<34} {scores['carried']:>6.2f} "
                      f"{scores['carried_next_to_key']:>6.2f} {scores['carried_farthest']:>6.2f}", flush=True)
    base = np.array(results["defaults"])
    fall, carried_fall = np.array(falls).T
    print(f"\nfall, next to a key − farthest (dB; median / worst): defaults {np.median(fall):.2f} / {fall.max():.2f}, "
          f"keys carried along the flow {np.median(carried_fall):.2f} / {carried_fall.max():.2f}")
    print(f"\nchange against the defaults over {len(base)} interval-styles (dB; mean / worst): time ratio")
    for name in list(configs)[1:]:
        change = np.array(results[name]) - base
        parts = [f"{m} {change[:, i].mean():+.2f} / {change[:, i].min():+.2f}" for i, m in enumerate(MEASURES)]
        ratio = np.array(results[name])[:, -1].sum() / base[:, -1].sum()
        print(f"{name}: " + ", ".join(parts) + f"; time {ratio:.2f}x")


if __name__ == "__main__":
    main()
