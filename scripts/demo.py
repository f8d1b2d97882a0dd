#!/usr/bin/env python3
"""The README's demo: run a shipped workflow headless on the real ComfyUI server.

Without model files it runs workflows/propagate_keyframes.json (key frames stylised by a
stand-in filter, propagated to every frame) on a short clip it generates, or on --video. With
--checkpoint and --controlnet (real SD1.5 files) it runs workflows/rerender_full_video.json on
the video instead. Prints the path of the mp4 it wrote.

    make demo
    make demo DEMO_ARGS="--video my_clip.mp4"
    make demo DEMO_ARGS="--video my_clip.mp4 --checkpoint v1-5-pruned-emaonly.safetensors --controlnet control_v11p_sd15_canny.pth"
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"rerender_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_clip(path: Path, frames: int = 48, size: int = 256, fps: float = 20.0) -> Path:
    """A short synthetic scene: drifting colour bands, a ball and a box crossing them."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    ys, xs = np.mgrid[0:size, 0:size]
    for t in range(frames):
        hue = ((xs + ys * 0.5 + 3 * t) % 180).astype(np.uint8)
        hsv = np.stack([hue, np.full_like(hue, 150), (150 + 60 * np.sin(ys / 17.0)).astype(np.uint8)], axis=-1)
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        cv2.circle(image, (int(40 + 3.5 * t), int(size / 2 + 30 * np.sin(t / 8))), 28, (40, 40, 230), -1)
        cv2.rectangle(image, (int(size - 70 - 2 * t), 30), (int(size - 20 - 2 * t), 80), (240, 240, 240), -1)
        writer.write(image)
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a shipped Rerender workflow headless and write an mp4.")
    parser.add_argument("--video", type=Path, help="a video to use instead of the generated clip")
    parser.add_argument("--checkpoint", type=Path, help="a real SD1.5 checkpoint (runs rerender_full_video)")
    parser.add_argument("--controlnet", type=Path, help="a real SD1.5 canny ControlNet (with --checkpoint)")
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output", help="where the mp4 goes")
    parser.add_argument("--frames", type=int, default=0, help="use at most this many frames (0: all)")
    parser.add_argument("--short-side", type=int, default=512, help="resize a given video so its short side is this")
    args = parser.parse_args()
    if (args.checkpoint is None) != (args.controlnet is None):
        parser.error("give both --checkpoint and --controlnet, or neither")
    for given in (args.video, args.checkpoint, args.controlnet):
        if given is not None and not given.is_file():
            parser.error(f"no file at {given}")

    headless, env = _script("comfy_headless"), _script("bootstrap_env")
    host = Path(os.environ.get("COMFYUI_PATH") or env.DEFAULT_HOST)
    workdir = Path(tempfile.mkdtemp(prefix="rerender-demo-"))
    video, short_side = (args.video.resolve(), args.short_side) if args.video else (make_clip(workdir / "clip.mp4"), 256)
    name = "rerender_full_video" if args.checkpoint else "propagate_keyframes"
    folders = {}
    if args.checkpoint:
        folders = {"checkpoints": args.checkpoint.resolve().parent, "controlnet": args.controlnet.resolve().parent}
    server = headless.ComfyServer(host, workdir, folders, output_dir=args.output.resolve())
    print(f"[demo] starting ComfyUI from {host} (log: {server.log_path})", flush=True)
    try:
        server.start()
        workflow = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
        prompt = headless.workflow_to_prompt(workflow, server.object_info())
        for node in prompt.values():
            inputs = node["inputs"]
            if node["class_type"] == "RerenderLoadVideo":
                inputs.update(path=str(video), short_side=short_side, frame_load_cap=args.frames)
            elif node["class_type"] == "RerenderSaveVideo":
                inputs["filename_prefix"] = f"rerender-demo/{name}"
            elif node["class_type"] == "CheckpointLoaderSimple":
                inputs["ckpt_name"] = args.checkpoint.name
            elif node["class_type"] == "ControlNetLoader":
                inputs["control_net_name"] = args.controlnet.name
        print(f"[demo] running workflows/{name}.json on {video}", flush=True)
        outputs = server.run(prompt, timeout=24 * 3600, workflow=workflow)
    except headless.PromptFailed as failure:
        sys.exit(f"[demo] the workflow failed: {failure}")
    finally:
        server.stop()
    save = next(i for i, node in prompt.items() if node["class_type"] == "RerenderSaveVideo")
    (saved,) = outputs[save]["images"]
    path = args.output.resolve() / saved["subfolder"] / saved["filename"]
    print(f"[demo] wrote {path}")
    print(path)


if __name__ == "__main__":
    main()
