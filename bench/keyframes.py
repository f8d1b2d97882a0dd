#!/usr/bin/env python3
"""Key-frame rendering cost against plain KSampler, side by side in one run on the same host and model.

Prints
  * time(RerenderKeyframes, all four constraints) / time(same frames, plain KSampler, two passes
    each) — goal <= 1.15;
  * time(RerenderKeyframes, pixel fusion off: one pass) / time(plain KSampler, one pass each) —
    goal <= 1.10;
  * the memory of the stored attention features: measured in this run, and for full-size SD1.5
    at 512x512 with 20 steps (measured per layer here, scaled by token count).
The model is the full-size SD1.5 checkpoint with random weights the tests use (sampling cost does
not depend on the weights); the plain baseline is VAEEncode -> KSampler (ddim, ddim_uniform, same
steps, cfg, denoise, seed) -> VAEDecode per frame. On two CPU cores keep --size and --steps small.

Run: .venv/bin/python bench/keyframes.py [--size 128] [--frames 3] [--steps 20]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import _pack  # noqa: F401  (puts the test harness on the path)
from harness.host import BOOTSTRAP, InProcessHost, host_root
from harness.models import ModelCache
from harness.rendering import CONSTRAINT_NODES, constrain, node_defaults
from harness.synthetic import shifted_clip

REFERENCE_SIZE, REFERENCE_STEPS = 512, 20


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels (multiple of 64)")
    parser.add_argument("--frames", type=int, default=3, help="key frames")
    parser.add_argument("--steps", type=int, default=20, help="steps per pass (the reference uses 20)")
    args = parser.parse_args()

    host = InProcessHost(host_root(), Path(tempfile.mkdtemp(prefix="rerender-bench-"))).start()
    cache = ModelCache(BOOTSTRAP.CACHE / "test-models")
    host.folder_paths().add_model_folder_path("checkpoints", str(cache.checkpoints))
    model, clip, vae = host.call("CheckpointLoaderSimple", ckpt_name=cache.checkpoint().name)
    (positive,) = host.call("CLIPTextEncode", clip=clip, text="a wolf in the snow, oil painting")
    (negative,) = host.call("CLIPTextEncode", clip=clip, text="blurry")
    frames, _ = shifted_clip(frames=args.frames, dx=3, dy=1, height=args.size, width=args.size, cell=args.size // 8)
    image = frames.movedim(1, -1)
    settings = dict(seed=1, steps=args.steps, cfg=7.5, denoise=0.75)

    def plain(passes: int):
        for index in range(args.frames):
            (latent,) = host.call("VAEEncode", pixels=image[index:index + 1], vae=vae)
            for _ in range(passes):
                (sampled,) = host.call("KSampler", model=model, positive=positive, negative=negative, latent_image=latent,
                                       sampler_name="ddim", scheduler="ddim_uniform", **settings)
            host.call("VAEDecode", samples=sampled, vae=vae)

    def rerender(patched):
        inputs = dict(node_defaults(host, "RerenderKeyframes"), model=patched, positive=positive, negative=negative,
                      vae=vae, key_frames=image, scheduler="ddim_uniform", **settings)
        return host.call("RerenderKeyframes", **inputs)

    all_four = constrain(host, model, vae, *CONSTRAINT_NODES)
    one_pass = constrain(host, model, vae, "RerenderCrossFrameAttention", "RerenderShapeFusion", "RerenderColorAdaIN")
    print(f"{args.frames} key frames of {args.size}x{args.size}, {args.steps} steps, full-size SD1.5 (random weights), "
          f"torch threads {torch.get_num_threads()}", flush=True)
    plain(1)   # warm-up: loads the UNet and the VAE once, outside the timings
    runs = {
        "plain KSampler, 2 passes each": lambda: plain(2),
        "RerenderKeyframes, all four constraints": lambda: rerender(all_four),
        "plain KSampler, 1 pass each": lambda: plain(1),
        "RerenderKeyframes, pixel fusion off": lambda: rerender(one_pass),
    }
    seconds = {}
    for name, run in runs.items():
        seconds[name], _ = timed(run)
        print(f"  {name:<42}{seconds[name]:8.1f} s", flush=True)
    two = seconds["RerenderKeyframes, all four constraints"] / seconds["plain KSampler, 2 passes each"]
    one = seconds["RerenderKeyframes, pixel fusion off"] / seconds["plain KSampler, 1 pass each"]
    print(f"ratio, all four constraints vs plain KSampler x2: {two:.3f} (goal <= 1.15: {'met' if two <= 1.15 else 'MISSED'})")
    print(f"ratio, pixel fusion off vs plain KSampler x1:     {one:.3f} (goal <= 1.10: {'met' if one <= 1.10 else 'MISSED'})")
    report_feature_memory(host, all_four, vae, positive, negative, frames[:2], args)


def report_feature_memory(host, model, vae, positive, negative, frames, args) -> None:
    """Stored-feature bytes of a real run, per layer, scaled to 512x512 and 20 steps."""
    keyframes = host.pack.keyframes.renderer
    peak, per_layer = 0, {}
    renderer = None

    def watch(key, pass_index, step, x0):
        nonlocal peak
        peak = max(peak, renderer.stored_bytes())
        for (s, block, index, branch), tensor in renderer.features.anchor.items():
            per_layer[block] = tensor.numel() * tensor.element_size()

    renderer = keyframes.KeyframeRenderer(model, vae, positive, negative, host.pack.flow.dis.DisFlow("medium"),
                                          keyframes.SamplingSettings(1, args.steps, 7.5, "ddim_uniform", 0.75),
                                          on_step=watch)
    with torch.inference_mode():
        renderer.render(frames)
    branches = 2   # cfg > 1: conditional and unconditional
    scale = (REFERENCE_SIZE / args.size) ** 2
    per_store = sum(per_layer.values()) * scale * branches * REFERENCE_STEPS
    print(f"stored attention features, this run ({args.size}x{args.size}, {args.steps} steps): peak "
          f"{peak / 2**20:.1f} MiB (half precision)")
    print(f"stored attention features, full-size SD1.5 at {REFERENCE_SIZE}x{REFERENCE_SIZE}, {REFERENCE_STEPS} steps: "
          f"{per_store / 2**20:.0f} MiB per store, {2 * per_store / 2**20:.0f} MiB for anchor + previous "
          f"({len(per_layer)} decoder layers, {branches} CFG branches)")


if __name__ == "__main__":
    main()
