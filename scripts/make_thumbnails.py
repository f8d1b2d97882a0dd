#!/usr/bin/env python3
"""Write example_workflows/<name>.jpg: the thumbnails current ComfyUI's templates browser shows.

Each one shows what its workflow makes: a strip of input frames over the same frames as the
workflow puts them out, made from the pack's own synthetic clip (scripts/demo.py's make_clip).
There are no SD1.5 weights where these are made, so every output strip comes from one real run
of propagate_keyframes (key frames styled by its stand-in filter, Image Quantize to 8 colours,
then propagated), headless through scripts/demo.py, and the label says "stand-in style".

    .venv/bin/python scripts/make_thumbnails.py        (one headless run on the 2024 test host, 1-2 min)
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from script_loader import load_script

DEMO = load_script("demo")
WIDTH, HEIGHT = 512, 288
COLUMNS, HEADER = 4, 48
TILE_W, TILE_H = WIDTH // COLUMNS, (HEIGHT - HEADER) // 2
MAX_BYTES = 55_000
STAND_IN = "demo clip; stand-in style (no SD weights here): the real look comes from your prompt"


@dataclass(frozen=True)
class Thumbnail:
    label: str              # what the workflow makes
    shows: str              # "first key frame", "key frames" or "every frame"
    subtitle: str = STAND_IN


THUMBNAILS = {
    "rerender_first_keyframe": Thumbnail("First key frame only: tune the look", "first key frame"),
    "rerender_keyframes": Thumbnail("The key frames, rendered under constraints", "key frames"),
    "rerender_full_video": Thumbnail("Full video: key frames + propagation", "every frame"),
    "propagate_keyframes": Thumbnail("Propagation of your own styled key frames", "every frame",
                                     "demo clip; keys styled by the workflow's stand-in filter: use your own"),
    "rerender_lora_freeu": Thumbnail("Full video with LoRA + FreeU", "every frame"),
    "rerender_host_video_nodes": Thumbnail("Full video with sound, core VIDEO nodes", "every frame"),
}

STYLED_KEYS = "9001"   # the node id save_styled_keys adds


def save_styled_keys(prompt: dict) -> None:
    """Also save the key frames as the stand-in styles them (what the key-frame workflows put out)."""
    (stand_in,) = [node_id for node_id, node in prompt.items() if node["class_type"] == "ImageQuantize"]
    prompt[STYLED_KEYS] = {"class_type": "SaveImage",
                           "inputs": {"images": [stand_in, 0], "filename_prefix": "rerender-thumbnails/key"}}


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video, BGR uint8."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise RuntimeError(f"OpenCV read no frames from {path}")
    return frames


def _tile(frame: np.ndarray, caption: str, dimmed: bool = False) -> np.ndarray:
    """One frame scaled to the tile width, its middle rows kept, with a small caption."""
    height = max(TILE_H, TILE_W * frame.shape[0] // frame.shape[1])
    scaled = cv2.resize(frame, (TILE_W, height), interpolation=cv2.INTER_AREA)
    top = (height - TILE_H) // 2
    tile = scaled[top:top + TILE_H].copy()
    if dimmed:
        tile = (tile * 0.3).astype(np.uint8)
        cv2.putText(tile, "not made", (TILE_W // 2 - 34, TILE_H // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (200, 200, 200), 1, cv2.LINE_AA)
    cv2.rectangle(tile, (0, TILE_H - 16), (8 + 7 * len(caption), TILE_H), (20, 20, 20), -1)
    cv2.putText(tile, caption, (3, TILE_H - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (235, 235, 235), 1, cv2.LINE_AA)
    cv2.rectangle(tile, (0, 0), (TILE_W - 1, TILE_H - 1), (30, 30, 30), 1)
    return tile


def compose(thumbnail: Thumbnail, inputs: list[np.ndarray], outputs: list[np.ndarray],
            styled_keys: dict[int, np.ndarray]) -> np.ndarray:
    """Header with the label, then input frames over what the workflow makes of them (BGR, WIDTH x HEIGHT).

    ``outputs`` are the propagated frames, ``styled_keys`` the styled key frames by frame index.
    """
    if thumbnail.shows == "every frame":
        picked = [round(i) for i in np.linspace(0, len(inputs) - 1, COLUMNS)]
        made = {i: outputs[i] for i in picked}
    else:
        picked = sorted(styled_keys)[:COLUMNS]
        made = {i: styled_keys[i] for i in picked[:1 if thumbnail.shows == "first key frame" else COLUMNS]}
    top = [_tile(inputs[i], f"in {i}") for i in picked]
    bottom = [_tile(made[i], f"out {i}") if i in made else _tile(inputs[i], f"out {i}", dimmed=True)
              for i in picked]
    canvas = np.full((HEIGHT, WIDTH, 3), 24, np.uint8)
    cv2.putText(canvas, thumbnail.label, (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.58, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(canvas, thumbnail.subtitle, (8, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (170, 200, 255), 1, cv2.LINE_AA)
    canvas[HEADER:HEADER + TILE_H] = np.concatenate(top, axis=1)
    canvas[HEADER + TILE_H:HEADER + 2 * TILE_H] = np.concatenate(bottom, axis=1)
    return canvas


def write_jpeg(image: np.ndarray, path: Path) -> int:
    """The best JPEG quality that stays under MAX_BYTES; returns the size written."""
    for quality in range(90, 40, -5):
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(data) <= MAX_BYTES:
            path.write_bytes(data.tobytes())
            return len(data)
    raise RuntimeError(f"{path.name} does not fit into {MAX_BYTES} bytes")


def main() -> None:
    names = sorted(p.stem for p in DEMO.WORKFLOWS.glob("*.json"))
    unlabelled = set(names) - set(THUMBNAILS)
    if unlabelled:
        raise SystemExit(f"[thumbnails] add a label to THUMBNAILS for {sorted(unlabelled)}")
    workdir = Path(tempfile.mkdtemp(prefix="rerender-thumbnails-"))
    clip = DEMO.make_clip(workdir / "clip.mp4")
    run = DEMO.run_shipped_workflow("propagate_keyframes", clip, 256, workdir / "output", extend=save_styled_keys)
    inputs, outputs = read_frames(clip), read_frames(run.video)
    styled = dict(zip(run.key_indices, (cv2.imread(str(p)) for p in run.saved_files(STYLED_KEYS))))
    if len(inputs) != len(outputs) or len(styled) != len(run.key_indices):
        raise SystemExit(f"[thumbnails] {len(inputs)} frames in, {len(outputs)} out, {len(styled)} styled keys")
    for name in names:
        path = DEMO.WORKFLOWS / f"{name}.jpg"
        size = write_jpeg(compose(THUMBNAILS[name], inputs, outputs, styled), path)
        print(f"{path} ({size // 1000} KB)")


if __name__ == "__main__":
    main()
