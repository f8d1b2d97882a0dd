"""The README's demo: run a shipped workflow headless on the real ComfyUI server.

Without model files it runs example_workflows/propagate_keyframes.json (key frames stylised by a
stand-in filter, propagated to every frame) on a short clip it generates, or on --video. With
--checkpoint and --controlnet (real SD1.5 files) it runs example_workflows/rerender_full_video.json
on the video instead. Prints the path of the mp4 it wrote.

    make demo
    make demo DEMO_ARGS="--video my_clip.mp4"
    make demo DEMO_ARGS="--video my_clip.mp4 --checkpoint v1-5-pruned-emaonly.safetensors --controlnet control_v11p_sd15_canny.pth"

scripts/make_thumbnails.py reuses make_clip and run_shipped_workflow.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from script_loader import load_script

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "example_workflows"
HEADLESS, BOOTSTRAP = load_script("comfy_headless"), load_script("bootstrap_env")


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


@dataclass
class DemoRun:
    video: Path                  # the mp4 Save Video wrote
    key_indices: list[int]       # the key frames Select Key Frames picked
    outputs: dict                # the UI outputs per node id, as the server's history reports them
    output_dir: Path             # where the saved files' subfolders are

    def saved_files(self, node_id: str) -> list[Path]:
        """The files a saving node (Save Image, Save Video) wrote."""
        return [self.output_dir / f["subfolder"] / f["filename"] for f in self.outputs[node_id]["images"]]


def demo_prompt(workflow: dict, object_info: dict, video: Path, short_side: int, frame_cap: int, name: str,
                checkpoint: Path | None = None, controlnet: Path | None = None) -> dict:
    """The shipped workflow as an API prompt that reads ``video`` and writes under rerender-demo/."""
    prompt = HEADLESS.workflow_to_prompt(workflow, object_info)
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "RerenderLoadVideo":
            inputs.update(path=str(video), short_side=short_side, frame_load_cap=frame_cap)
        elif node["class_type"] == "RerenderSaveVideo":
            inputs["filename_prefix"] = f"rerender-demo/{name}"
        elif node["class_type"] == "CheckpointLoaderSimple" and checkpoint is not None:
            inputs["ckpt_name"] = checkpoint.name
        elif node["class_type"] == "ControlNetLoader" and controlnet is not None:
            inputs["control_net_name"] = controlnet.name
    return prompt


def run_shipped_workflow(name: str, video: Path, short_side: int, output: Path, frame_cap: int = 0,
                         checkpoint: Path | None = None, controlnet: Path | None = None,
                         host: Path | None = None, extend: Callable[[dict], None] | None = None) -> DemoRun:
    """Start ComfyUI headless (``COMFYUI_PATH``, else the 2024 test host), run
    example_workflows/<name>.json on ``video`` and stop the server again.

    ``extend`` may add nodes to the API prompt before it is queued (e.g. a Save Image of a
    node's output). Raises HEADLESS.PromptFailed when the host rejects the prompt or a node fails.
    """
    host = host or Path(os.environ.get("COMFYUI_PATH") or BOOTSTRAP.DEFAULT_HOST)
    folders = {}
    if checkpoint is not None:
        folders = {"checkpoints": checkpoint.resolve().parent, "controlnet": controlnet.resolve().parent}
    server = HEADLESS.ComfyServer(host, Path(tempfile.mkdtemp(prefix="rerender-demo-")), folders,
                                  output_dir=output.resolve())
    print(f"[demo] starting ComfyUI from {host} (log: {server.log_path})", flush=True)
    try:
        server.start()
        workflow = json.loads((WORKFLOWS / f"{name}.json").read_text())
        prompt = demo_prompt(workflow, server.object_info(), video, short_side, frame_cap, name, checkpoint, controlnet)
        if extend is not None:
            extend(prompt)
        print(f"[demo] running example_workflows/{name}.json on {video}", flush=True)
        outputs = server.run(prompt, timeout=24 * 3600, workflow=workflow)
    finally:
        server.stop()
    by_type = {node["class_type"]: node_id for node_id, node in prompt.items()}
    (indices_text,) = outputs[by_type["RerenderSelectKeyframes"]]["text"]
    run = DemoRun(Path(), [int(i) for i in indices_text.split(",") if i.strip()], outputs, output.resolve())
    (run.video,) = run.saved_files(by_type["RerenderSaveVideo"])
    return run


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

    if args.video:
        video, short_side = args.video.resolve(), args.short_side
    else:
        video, short_side = make_clip(Path(tempfile.mkdtemp(prefix="rerender-demo-clip-")) / "clip.mp4"), 256
    name = "rerender_full_video" if args.checkpoint else "propagate_keyframes"
    try:
        run = run_shipped_workflow(name, video, short_side, args.output, args.frames, args.checkpoint, args.controlnet)
    except HEADLESS.PromptFailed as failure:
        sys.exit(f"[demo] the workflow failed: {failure}")
    print(f"[demo] wrote {run.video}")
    print(run.video)


if __name__ == "__main__":
    main()
