#!/usr/bin/env python3
"""The pack's propagation against the reference pipeline (Rerender's EbSynth and blend), side by side.

For each case (a key interval of a clip: keys 10 frames apart, frames stylised independently as
ground truth, the two styles of ``bench/propagation.py --styles``) the same frames, key styles,
DIS medium flow and occlusion masks go to the reference pipeline (bench/reference: the EbSynth
fork Rerender uses, all four guides, 12 × 6 iterations, its histogram blend; built by
``bench/reference/build_ebsynth.sh``) and to the pack with its defaults (and any further settings
given, as in ``bench/propagation_settings.py``). Per case and style it prints the mean PSNR of the
non-key frames, next to a key, farthest from both keys, the fall between those two, on the
disoccluded pixels, the steadiness along the flow (the truth's own beside it) and seconds per frame
per direction. At the end, for each pack setting: its difference from the reference per measure
(median and worst over all case-styles), and its fall against the reference's.

A case is clip:first-frame[:stride] (11 frames from there, every stride-th: a stride of 2 doubles
the motion between frames). Reference outputs are cached in .cache/reference (keyed by every input),
so a second run costs only the pack's time; the seconds printed for a cached reference are those
of the run that made it. With --colour-only, EbSynth with the colour guide alone (same blend) too.

Run: .venv/bin/python bench/propagation_reference.py --ebsynth .cache/ebsynth [--cases wolf.mp4:0,...] [SETTING...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from _pack import ROOT, SHARED_DATA, propagation_modules
from harness.propagation_quality import KEY_SPACING, key_interval_clip, measure_settings
from propagation_settings import settings_from
from reference import rerender_pipeline

DEFAULT_CASES = ("wolf.mp4:0,wolf.mp4:10,wolf.mp4:29,woman-running.mp4:0,woman-running.mp4:20,woman-running.mp4:40,"
                 "woman-running.mp4:60,woman-running.mp4:80,woman-running.mp4:100,wolf.mp4:0:2,woman-running.mp4:30:2")
MEASURES = ("pack", "next_to_key", "farthest", "pack_disoccluded", "steadiness")
REFERENCE = "reference (EbSynth, 4 guides)"
COLOUR_ONLY = "EbSynth, colour guide only"


def reference_propagation(binary: Path, guides: str):
    def run(frames, keys, key_styles, video_flow):
        return rerender_pipeline.propagate(frames, keys, key_styles, video_flow, binary, guides,
                                           cache=ROOT / ".cache" / "reference")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ebsynth", required=True, type=Path, help="the EbSynth fork's binary (build_ebsynth.sh)")
    parser.add_argument("--cases", default=DEFAULT_CASES)
    parser.add_argument("--colour-only", action="store_true", help="also EbSynth with the colour guide alone")
    parser.add_argument("settings", nargs="*", help="JSON objects of pack settings to compare as well")
    args = parser.parse_args()
    if not args.ebsynth.is_file():
        raise SystemExit(f"--ebsynth {args.ebsynth} is not a file: build it with bench/reference/build_ebsynth.sh")
    modules = propagation_modules()
    configs = {REFERENCE: reference_propagation(args.ebsynth, "all")}
    if args.colour_only:
        configs[COLOUR_ONLY] = reference_propagation(args.ebsynth, "color")
    configs |= {"pack defaults": settings_from({})} | {text: settings_from(json.loads(text)) for text in args.settings}
    print(f"keys {KEY_SPACING} frames apart, DIS medium flow, CPU; torch threads {torch.get_num_threads()}")
    print(f"{'case':<24} {'style':<20} {'propagation':<34} {'mean':>6} {'next':>6} {'far':>6} {'fall':>5} "
          f"{'disocc':>7} {'steady':>6} {'truth':>6} {'s/f/dir':>8}")
    rows: dict[str, list] = {name: [] for name in configs}
    for case in args.cases.split(","):
        clip, first, *stride = case.split(":")
        frames = key_interval_clip(SHARED_DATA / "videos" / clip, KEY_SPACING + 1, int(first),
                                   int(stride[0]) if stride else 1)
        for style_name, name, s, seconds in measure_settings(frames, configs, modules):
            fall = s["next_to_key"] - s["farthest"]
            rows[name].append([s[m] for m in MEASURES] + [fall, seconds])
            print(f"{case:<24} {style_name:<20} {name:<34} {s['pack']:>6.2f} {s['next_to_key']:>6.2f} "
                  f"{s['farthest']:>6.2f} {fall:>5.2f} {s['pack_disoccluded']:>7.2f} {s['steadiness']:>6.2f} "
                  f"{s['truth_steadiness']:>6.2f} {seconds:>8.2f}", flush=True)
    reference = np.array(rows[REFERENCE])
    print(f"\nagainst the reference over {len(reference)} case-styles (dB; median / worst): fall (median / worst)")
    for name in [n for n in configs if n != REFERENCE]:
        result = np.array(rows[name])
        change = result - reference
        parts = [f"{m} {np.median(change[:, i]):+.2f} / {change[:, i].min():+.2f}" for i, m in enumerate(MEASURES)]
        falls = result[:, len(MEASURES)]
        print(f"{name}: " + ", ".join(parts) + f"; fall {np.median(falls):.2f} / {falls.max():.2f} against the "
              f"reference's {np.median(reference[:, len(MEASURES)]):.2f} / {reference[:, len(MEASURES)].max():.2f}; "
              f"the reference takes {reference[:, -1].sum() / result[:, -1].sum():.1f}x its time")


if __name__ == "__main__":
    main()
