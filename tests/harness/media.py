"""Reading the shared test videos, the stylisations used as ground truth, PSNR."""
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


# Paper grain: fine (σ 2 px) and coarse (σ 6 px) blotches, 15 % contrast per standard deviation,
# clipped at ±3 standard deviations so no pixel goes black or doubles.
GRAIN_SIGMAS = (2.0, 6.0)
GRAIN_STRENGTH = 0.15
GRAIN_RANGE = (0.55, 1.45)


def paper_grain(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A fixed screen-space texture: the multiplier [1, 1, H, W] float32 in [0.55, 1.45], mean about 1.

    n is the sum of two standard normal images from ``torch.Generator`` seeded with ``seed``, each
    Gaussian-blurred (σ 2 and 6 px), scaled to unit variance; the grain is clip(1 + 0.15·n, 0.55, 1.45).
    It is tied to the screen, not to the scene: it stays put while the content moves, so a style
    carried along the flow from the key frames cannot match it exactly.
    """
    generator = torch.Generator().manual_seed(seed)
    noises = torch.randn(len(GRAIN_SIGMAS), height, width, generator=generator).numpy()
    n = sum(cv2.GaussianBlur(noise, (0, 0), sigma) for noise, sigma in zip(noises, GRAIN_SIGMAS))
    n = n / n.std()
    grain = np.clip(1 + GRAIN_STRENGTH * n, *GRAIN_RANGE)
    return torch.from_numpy(grain.astype(np.float32))[None, None]


def stylize_with_grain(frames: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``stylize`` times ``paper_grain`` (the same texture on all channels and frames), clipped to [0, 1].

    frames: [N, 3, H, W] RGB in [0, 1]; returns [N, 3, H, W] float32 RGB in [0, 1].
    """
    return (stylize(frames) * paper_grain(*frames.shape[-2:], seed=seed)).clamp(0, 1)


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


def write_clip_with_tone(path, frames: int = 24, width: int = 64, height: int = 64, fps: float = 20.0,
                         tone_hz: float | None = 440.0, sample_rate: int = 44100, channels: int = 2,
                         cell: int = 8) -> Path:
    """An H.264 mp4 of a textured square drifting (2, 1) px per frame, with a sine tone (or no sound with
    ``tone_hz=None``) lasting exactly frames ÷ fps. Written with PyAV (a test dependency).

    The tone's amplitude rises linearly from 0.1 at the start to 0.7 at the end (``tone_amplitude``),
    so a test can tell which part of the clip a piece of sound comes from.
    """
    from fractions import Fraction

    import av

    from harness.synthetic import shifted_clip

    clip, _ = shifted_clip(frames=frames, dx=2, dy=1, height=height, width=width, cell=cell)
    pictures = (clip.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if tone_hz is not None:   # every stream exists before the first packet is muxed
            audio = container.add_stream("aac", rate=sample_rate)
            audio.layout = "stereo" if channels == 2 else "mono"
        for picture in pictures:
            container.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(video.encode(None))
        if tone_hz is not None:
            t = np.arange(round(frames / fps * sample_rate)) / sample_rate
            gain = tone_amplitude(t, frames / fps)
            wave = np.stack([gain * np.sin(2 * np.pi * tone_hz * (1 + c / 2) * t) for c in range(channels)])
            piece = av.AudioFrame.from_ndarray(wave.astype(np.float32), format="fltp", layout=audio.layout.name)
            piece.sample_rate, piece.pts = sample_rate, 0
            container.mux(audio.encode(piece))
            container.mux(audio.encode(None))
    return Path(path)


def tone_amplitude(t, duration: float):
    """The amplitude of write_clip_with_tone's tone at time ``t`` seconds of a clip of ``duration``."""
    return 0.1 + 0.6 * np.asarray(t) / duration


def stream_facts(path) -> dict:
    """What a player finds in a file (PyAV): {"video": {...}, "audio": {...} or None, "tags": {...}}.

    Durations in seconds come from the streams (their frame and sample counts over their rates).
    """
    import av

    with av.open(str(path)) as container:
        facts = {"tags": dict(container.metadata), "audio": None, "video": None}
        if container.streams.video:
            stream = container.streams.video[0]
            count = sum(1 for _ in container.decode(stream))
            facts["video"] = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                              "frames": count, "fps": float(stream.average_rate),
                              "width": stream.codec_context.width, "height": stream.codec_context.height,
                              "duration": count / float(stream.average_rate)}
        container.seek(0)
        if container.streams.audio:
            stream = container.streams.audio[0]
            duration = float(stream.duration * stream.time_base) if stream.duration else None
            facts["audio"] = {"codec": stream.codec_context.name, "sample_rate": stream.codec_context.sample_rate,
                              "channels": stream.codec_context.layout.nb_channels, "duration": duration}
        facts["streams"] = [s.type for s in container.streams]
    return facts
