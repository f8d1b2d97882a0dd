"""Reading the shared test videos, the stylisation used as ground truth, PSNR."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch


def read_video(path: Path, limit: int | None = None) -> torch.Tensor:
    """Frames of a video file as [N, 3, H, W] float RGB in [0, 1]."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise RuntimeError(f"could not read frames from {path}")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0


def stylize(frames: torch.Tensor) -> torch.Tensor:
    """The propagation ground truth: cv2.stylization(sigma_s=60, sigma_r=0.45) of every frame."""
    out = []
    for frame in frames:
        bgr = (frame.permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
        out.append(torch.from_numpy(cv2.stylization(bgr, sigma_s=60, sigma_r=0.45)[..., ::-1].copy()))
    return torch.stack(out).permute(0, 3, 1, 2).float() / 255.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio of images in [0, 1], in dB."""
    return 10 * torch.log10(1 / (a - b).pow(2).mean()).item()


def video_facts(path) -> tuple[int, tuple[int, int], float, str]:
    """(frames decoded, (height, width), fps, FourCC) of a video file, as a player would see it."""
    capture = cv2.VideoCapture(str(path))
    count, size = 0, (0, 0)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, size = count + 1, frame.shape[:2]
    fps, fourcc = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FOURCC))
    capture.release()
    return count, size, fps, fourcc.to_bytes(4, "little").decode(errors="replace")
