"""Reading clips into frame batches (with their sound) and writing frame batches as mp4 files.

Frames are [N, H, W, 3] float RGB in [0, 1] (ComfyUI's IMAGE layout); sound is an AUDIO dict
(video/audio.py). Never imports ComfyUI.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from .audio import audio, check_audio, fit_samples, sample_count, silent_audio
from .budget import LoadEstimate, loaded_frame_count
from .codecs import best_backend, check_backend, encode_video, probe_video, read_audio

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".gif")
DEFAULT_CRF = 19


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


def loaded_size(width: int, height: int, short_side: int, crop: tuple[int, int, int, int]) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` frame after ``crop`` (left, right, top, bottom) and the
    short-side resize (``fit_size``). Raises ``ValueError`` when the crop removes the whole frame."""
    left, right, top, bottom = crop
    if left + right >= width or top + bottom >= height:
        raise ValueError(f"crop removes the whole {width}x{height} frame: lower crop_left/right/top/bottom.")
    return fit_size(width - left - right, height - top - bottom, short_side)


def read_video(path: str | os.PathLike, frame_load_cap: int = 0, skip_first_frames: int = 0,
               select_every_nth: int = 1, short_side: int = 512, crop: tuple[int, int, int, int] = (0, 0, 0, 0),
               name: str = "video", on_frame: Callable[[int], None] | None = None) -> LoadedVideo:
    """Decode a video with OpenCV.

    Args:
        frame_load_cap: keep at most this many frames (0: all).
        skip_first_frames: frames dropped at the start.
        select_every_nth: keep every n-th frame after that (the fps is divided accordingly).
        short_side: resize so the short side is this, each side a multiple of 64 (0: keep).
        crop: pixels removed from the (left, right, top, bottom) before resizing.
        name: how errors refer to the input.
        on_frame: called with the number of frames kept so far after each one; may raise to cancel.
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
            size = loaded_size(width, height, short_side, crop)
            frame = frame[top:height - bottom, left:width - right]
            if size != (frame.shape[1], frame.shape[0]):
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if on_frame is not None:
                on_frame(len(frames))
        source_size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()
    if not frames:
        skipped = f" after skipping {skip_first_frames}" if skip_first_frames else ""
        raise ValueError(f"{name}: {path.name} has no frames to load{skipped}: check the file (or lower "
                         "skip_first_frames). If it plays elsewhere, OpenCV cannot decode its codec: convert it to "
                         "an H.264 .mp4.")
    images = torch.from_numpy(np.stack(frames)).float().div_(255.0)
    fps = (source_fps or 24.0) / select_every_nth
    return LoadedVideo(images, fps, source_fps, source_size)


def planned_load(path: str | os.PathLike, frame_load_cap: int = 0, skip_first_frames: int = 0, select_every_nth: int = 1,
                 short_side: int = 512, crop: tuple[int, int, int, int] = (0, 0, 0, 0)) -> LoadEstimate | None:
    """The frames ``read_video`` would keep and their size, from the container's header alone (nothing is
    decoded), or None when the header does not say how many frames there are."""
    facts = probe_video(path)
    if facts is None or facts.frame_count <= 0 or facts.width <= 0 or facts.height <= 0:
        return None
    width, height = loaded_size(facts.width, facts.height, short_side, crop)
    count = loaded_frame_count(facts.frame_count, frame_load_cap, skip_first_frames, select_every_nth)
    return LoadEstimate(count, width, height)


def read_sound(path: str | os.PathLike, loaded: LoadedVideo, skip_first_frames: int, select_every_nth: int,
               backend: str | None = None) -> tuple[dict, str | None]:
    """The sound that plays during the loaded frames, as an AUDIO dict, and why it is silent (or None).

    The span starts at frame ``skip_first_frames`` and lasts frames × ``select_every_nth`` source
    frames, i.e. frames ÷ fps seconds. A clip without sound (or a machine that cannot decode it)
    gives mono silence of that length.
    """
    source_fps = loaded.source_fps or loaded.fps * select_every_nth
    duration = loaded.frames.shape[0] / loaded.fps
    backend = backend or best_backend()
    if backend == "opencv":
        return silent_audio(duration), "neither PyAV nor ffmpeg is installed, so the sound could not be read"
    sound = read_audio(path, skip_first_frames / source_fps, duration, backend)
    if sound is None:
        return silent_audio(duration), "the clip has no sound"
    waveform, rate = sound
    return audio(torch.from_numpy(waveform), rate), None


class _Frames:
    """uint8 RGB frames [H, W, 3] converted from a float IMAGE batch one at a time (no whole-clip copy)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __iter__(self):
        for image in self.images:
            yield (image[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_video(frames: torch.Tensor, fps: float, path: str | os.PathLike, crf: int = DEFAULT_CRF,
                sound: dict | None = None, metadata: dict | None = None, backend: str | None = None,
                on_frame: Callable[[int], None] | None = None) -> str:
    """Write an mp4 that appears only once complete (written beside it under a hidden name, then renamed).

    Args:
        frames: [N, H, W, 3 or 4] float RGB in [0, 1] (alpha is dropped).
        crf: H.264 quality, 0 (lossless) to 51; 17–23 look clean.
        sound: an AUDIO dict; cut or padded with silence to N ÷ fps seconds, muxed as AAC.
        metadata: tags to embed (values that are not strings are stored as JSON), e.g. the
            prompt and workflow as ComfyUI's Save Video embeds them.
        backend: "pyav", "ffmpeg" or "opencv" (default: the best available, codecs.best_backend).
        on_frame: called with each frame's index once it is encoded; may raise to cancel (the
            partial file is removed).

    Returns:
        the codec written: "h264", or "mp4v" with the OpenCV backend (no sound, no metadata).
    """
    path = Path(path)
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] not in (3, 4):
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"images must be a non-empty IMAGE batch; got shape {shape}.")
    if not fps > 0:
        raise ValueError(f"fps must be above 0 (got {fps}).")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be between 0 and 51 (got {crf}); 19 is visually clean, higher is smaller.")
    if not path.parent.is_dir():
        raise ValueError(f"The output folder {path.parent} does not exist: create it or choose another prefix.")
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"The output folder {path.parent} is not writable: change its permissions or ComfyUI's "
                         "--output-directory.")
    backend = check_backend(backend)
    count, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    track = None
    if sound is not None and backend != "opencv":
        waveform, rate = check_audio(sound)
        track = (fit_samples(waveform, sample_count(count / fps, rate)).numpy(), rate)
    tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    handle, partial = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.mp4", dir=path.parent)
    os.close(handle)
    try:
        codec = encode_video(_Frames(frames), count, (width, height), fps, partial, crf, track, tags, backend, on_frame)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return codec
