"""Reading clips into frame batches and writing frame batches as mp4 files.

Frames are [N, H, W, 3] float RGB in [0, 1] (ComfyUI's IMAGE layout). Never imports ComfyUI.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".gif")


@dataclass(frozen=True)
class LoadedVideo:
    frames: torch.Tensor   # [N, H, W, 3] float RGB in [0, 1]
    fps: float
    source_fps: float
    source_size: tuple[int, int]   # (width, height) as stored in the file


def fit_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Scale so the short side is ``short_side``, then round each side to a multiple of 64 (the
    paper's resize; 0 keeps the size). Returns (width, height)."""
    if short_side <= 0:
        return width, height
    scale = short_side / min(width, height)
    return max(64, round(width * scale / 64) * 64), max(64, round(height * scale / 64) * 64)


def read_video(path: str | os.PathLike, frame_load_cap: int = 0, skip_first_frames: int = 0,
               select_every_nth: int = 1, short_side: int = 512, crop: tuple[int, int, int, int] = (0, 0, 0, 0),
               name: str = "video") -> LoadedVideo:
    """Decode a video with OpenCV.

    Args:
        frame_load_cap: keep at most this many frames (0: all).
        skip_first_frames: frames dropped at the start.
        select_every_nth: keep every n-th frame after that (the fps is divided accordingly).
        short_side: resize so the short side is this, each side a multiple of 64 (0: keep).
        crop: pixels removed from the (left, right, top, bottom) before resizing.
        name: how errors refer to the input.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name}: there is no file at {path}. Put the video into ComfyUI's input folder "
                         "(or upload it) or give its full path.")
    if select_every_nth < 1:
        raise ValueError(f"select_every_nth must be at least 1 (got {select_every_nth}).")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{name}: OpenCV cannot open {path.name}; it is not a video or its codec is not "
                         "supported. Convert it to an H.264 .mp4 (e.g. ffmpeg -i in.mov -c:v libx264 out.mp4).")
    try:
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        frames, index = [], -1
        left, right, top, bottom = crop
        while frame_load_cap <= 0 or len(frames) < frame_load_cap:
            ok, frame = capture.read()
            if not ok:
                break
            index += 1
            if index < skip_first_frames or (index - skip_first_frames) % select_every_nth:
                continue
            height, width = frame.shape[:2]
            if left + right >= width or top + bottom >= height:
                raise ValueError(f"crop removes the whole {width}x{height} frame: lower crop_left/right/top/bottom.")
            frame = frame[top:height - bottom, left:width - right]
            size = fit_size(frame.shape[1], frame.shape[0], short_side)
            if size != (frame.shape[1], frame.shape[0]):
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        source_size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()
    if not frames:
        skipped = f" after skipping {skip_first_frames}" if skip_first_frames else ""
        raise ValueError(f"{name}: {path.name} has no frames to load{skipped}: check the file (or lower "
                         "skip_first_frames). If it plays elsewhere, OpenCV cannot decode its codec: convert it to "
                         "an H.264 .mp4.")
    images = torch.from_numpy(np.stack(frames)).float() / 255.0
    fps = (source_fps or 24.0) / select_every_nth
    return LoadedVideo(images, fps, source_fps, source_size)


def ffmpeg_executable() -> str | None:
    return shutil.which("ffmpeg")


def _write_with_ffmpeg(ffmpeg: str, frames: np.ndarray, fps: float, path: Path) -> None:
    height, width = frames.shape[1:3]
    command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "17",
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-movflags", "+faststart", "-f", "mp4", str(path)]
    result = subprocess.run(command, input=frames.tobytes(), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write the video: {result.stderr.decode(errors='replace').strip()}")


def _write_with_opencv(frames: np.ndarray, fps: float, path: Path) -> None:
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open an mp4 writer at {path.parent}.")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def write_video(frames: torch.Tensor, fps: float, path: str | os.PathLike, use_ffmpeg: bool | None = None) -> str:
    """Write an mp4 that appears only once complete (written beside it, then renamed).

    H.264 through ffmpeg when ffmpeg is on PATH (``use_ffmpeg=None``), OpenCV's mp4v otherwise.

    Args:
        frames: [N, H, W, 3] float RGB in [0, 1].

    Returns:
        the codec used: "h264" or "mp4v".
    """
    path = Path(path)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"images must be a non-empty IMAGE batch; got shape {tuple(frames.shape)}.")
    if not fps > 0:
        raise ValueError(f"fps must be above 0 (got {fps}).")
    if not path.parent.is_dir():
        raise ValueError(f"The output folder {path.parent} does not exist: create it or choose another prefix.")
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"The output folder {path.parent} is not writable: change its permissions or ComfyUI's "
                         "--output-directory.")
    array = (frames[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    ffmpeg = ffmpeg_executable() if use_ffmpeg in (None, True) else None
    if use_ffmpeg and ffmpeg is None:
        raise RuntimeError("ffmpeg is not on PATH.")
    handle, partial = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.mp4", dir=path.parent)
    os.close(handle)
    try:
        if ffmpeg:
            _write_with_ffmpeg(ffmpeg, array, fps, Path(partial))
        else:
            _write_with_opencv(array, fps, Path(partial))
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return "h264" if ffmpeg else "mp4v"
