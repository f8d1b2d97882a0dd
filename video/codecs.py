"""The encoders and decoders behind Load Video and Save Video: PyAV, the ffmpeg command, OpenCV.

PyAV when it is importable (current ComfyUI requires ``av``), else the ``ffmpeg``/``ffprobe``
commands, else OpenCV alone, which writes MPEG-4 part 2 without sound (browsers cannot preview
it). Frames are uint8 RGB [H, W, 3] numpy arrays here; sound is float32 [channels, samples].
Never imports ComfyUI.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

BACKENDS = ("pyav", "ffmpeg", "opencv")
CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
AAC_BITRATE = 192_000
X264_PRESET = "medium"


def has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def ffmpeg_executable() -> str | None:
    return shutil.which("ffmpeg")


def ffprobe_executable() -> str | None:
    return shutil.which("ffprobe")


def best_backend() -> str:
    """The best way this machine has to read sound and write H.264: "pyav", "ffmpeg" or "opencv"."""
    if has_pyav():
        return "pyav"
    return "ffmpeg" if ffmpeg_executable() else "opencv"


def check_backend(backend: str | None) -> str:
    backend = backend or best_backend()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
    if backend == "pyav" and not has_pyav():
        raise RuntimeError("PyAV is not installed (pip install av).")
    if backend == "ffmpeg" and not ffmpeg_executable():
        raise RuntimeError("ffmpeg is not on PATH.")
    return backend


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class StreamFacts:
    """What a file says about its first video stream, before anything is decoded."""
    frame_count: int            # 0 when the container does not say
    width: int
    height: int
    fps: float                  # 0.0 when the container does not say


def probe_video(path: str | os.PathLike) -> StreamFacts | None:
    """Frame count, size and rate of the first video stream as the container reports them (OpenCV), or None
    when OpenCV cannot open the file."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return None
        return StreamFacts(max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                           int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), float(capture.get(cv2.CAP_PROP_FPS) or 0.0))
    finally:
        capture.release()


def read_audio(path: str | os.PathLike, start_s: float, duration_s: float,
               backend: str | None = None) -> tuple[np.ndarray, int] | None:
    """The first audio stream's samples from ``start_s`` for ``duration_s`` seconds.

    Times are measured from the start of the video stream. Returns (float32 [channels, samples],
    sample rate) with exactly round(duration_s × rate) samples (silence pads what the stream lacks),
    or None when the file has no audio stream or the backend cannot read sound ("opencv").
    """
    backend = check_backend(backend)
    if backend == "pyav":
        return _read_audio_pyav(path, start_s, duration_s)
    if backend == "ffmpeg":
        return _read_audio_ffmpeg(path, start_s, duration_s)
    return None


def _span(chunks: list[tuple[int, np.ndarray]], channels: int, first: int, count: int) -> np.ndarray:
    """Samples [first, first + count) out of (offset, [channels, n]) chunks; silence where none is."""
    out = np.zeros((channels, count), np.float32)
    for offset, chunk in chunks:
        lo, hi = max(offset, first), min(offset + chunk.shape[1], first + count)
        if hi > lo:
            out[:, lo - first:hi - first] = chunk[:, lo - offset:hi - offset]
    return out


def _read_audio_pyav(path, start_s: float, duration_s: float):
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        layout = stream.codec_context.layout
        channels = layout.nb_channels
        video = container.streams.video[0] if container.streams.video else None
        origin = float(video.start_time * video.time_base) if video is not None and video.start_time is not None else 0.0
        first, count = round(start_s * rate), round(duration_s * rate)
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks, position = [], None
        for frame in container.decode(stream):
            if position is None:   # later frames follow on sample by sample
                position = round((frame.time - origin) * rate) if frame.time is not None else 0
            for planar in resampler.resample(frame):
                samples = planar.to_ndarray().astype(np.float32, copy=False)
                if position + samples.shape[1] > first:
                    chunks.append((position, samples))
                position += samples.shape[1]
            if position >= first + count:
                break
    return _span(chunks, channels, first, count), int(rate)


def _read_audio_ffmpeg(path, start_s: float, duration_s: float):
    ffprobe = ffprobe_executable()
    if ffprobe is None:
        return None
    probe = subprocess.run([ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
                            "stream=channels,sample_rate", "-of", "json", str(path)], capture_output=True, text=True)
    streams = json.loads(probe.stdout or "{}").get("streams", []) if probe.returncode == 0 else []
    if not streams:
        return None
    channels, rate = int(streams[0]["channels"]), int(streams[0]["sample_rate"])
    count = round(duration_s * rate)
    # -ss after -i cuts at the exact sample, not at the key frame before it.
    result = subprocess.run([ffmpeg_executable(), "-v", "error", "-i", str(path), "-ss", f"{start_s:.6f}",
                             "-t", f"{duration_s:.6f}", "-map", "0:a:0", "-f", "f32le", "-ac", str(channels),
                             "-ar", str(rate), "-"], capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not read the sound of {Path(path).name}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    samples = np.frombuffer(result.stdout, np.float32).reshape(-1, channels).T
    return _span([(0, samples)], channels, 0, count), rate


# ---------------------------------------------------------------------------------------------
# Writing


def even_size(frame: np.ndarray) -> np.ndarray:
    """Pad an odd-sided [H, W, 3] frame by repeating its last row/column (yuv420p needs even sides)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def frame_rate(fps: float) -> Fraction:
    """fps as the exact fraction a container stores (29.97 → 30000/1001)."""
    return Fraction(round(fps * 1000), 1000).limit_denominator(1001 * 240)


def encode_video(frames: Iterable[np.ndarray], count: int, size: tuple[int, int], fps: float, path: str | os.PathLike,
                 crf: int,
                 sound: tuple[np.ndarray, int] | None = None, metadata: dict[str, str] | None = None,
                 backend: str | None = None, on_frame: Callable[[int], None] | None = None) -> str:
    """Encode ``count`` ``frames`` (uint8 RGB [H, W, 3]; ``size`` = (W, H)) into an mp4 at ``path``.

    H.264 yuv420p at ``crf`` with "pyav" or "ffmpeg" (odd sides padded by one repeated row or
    column), with ``sound`` (float32 [channels, samples], rate) as AAC, and ``metadata`` as
    container tags (mp4 ``use_metadata_tags``, as ComfyUI's own Save Video writes them);
    OpenCV's mp4v without sound or tags with "opencv". ``on_frame(i)`` runs after frame i and
    may raise to stop. Returns the video codec written: "h264" or "mp4v".
    """
    backend = check_backend(backend)
    if backend == "pyav":
        _encode_pyav(frames, count, size, fps, path, crf, sound, metadata or {}, on_frame)
        return "h264"
    if backend == "ffmpeg":
        _encode_ffmpeg(frames, size, fps, path, crf, sound, metadata or {}, on_frame)
        return "h264"
    _encode_opencv(frames, size, fps, path, on_frame)
    return "mp4v"


def _sound_chunks(sound, fps: float, frame_count: int):
    """For frame i, the samples that play during it, so sound and video interleave in the file."""
    waveform, rate = sound
    edges = [round(i * rate / fps) for i in range(frame_count + 1)]
    edges[-1] = waveform.shape[1]
    return [np.ascontiguousarray(waveform[:, edges[i]:edges[i + 1]]) for i in range(frame_count)], edges


def _encode_pyav(frames, count, size, fps, path, crf, sound, metadata, on_frame) -> None:
    import av

    width, height = size
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "use_metadata_tags+faststart"}) as container:
        for key, value in metadata.items():
            container.metadata[key] = value
        video = container.add_stream("libx264", rate=frame_rate(fps))
        video.width, video.height = width + width % 2, height + height % 2
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf), "preset": X264_PRESET}
        audio = None
        if sound is not None:
            waveform, rate = sound
            audio = container.add_stream("aac", rate=rate)
            audio.layout = CHANNEL_LAYOUTS[waveform.shape[0]]
            audio.bit_rate = AAC_BITRATE
        chunks, edges = _sound_chunks(sound, fps, count) if sound is not None else (None, None)
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(even_size(frame), format="rgb24").reformat(format="yuv420p")
            container.mux(video.encode(picture))
            if audio is not None and chunks[index].shape[1]:
                piece = av.AudioFrame.from_ndarray(chunks[index], format="fltp", layout=audio.layout.name)
                piece.sample_rate, piece.pts = sound[1], edges[index]
                container.mux(audio.encode(piece))
            if on_frame is not None:
                on_frame(index)
        container.mux(video.encode(None))
        if audio is not None:
            container.mux(audio.encode(None))


def _ffmetadata(metadata: dict[str, str]) -> str:
    def escape(text: str) -> str:
        for char in ("\\", "=", ";", "#", "\n"):
            text = text.replace(char, "\\" + char)
        return text
    return ";FFMETADATA1\n" + "".join(f"{escape(k)}={escape(v)}\n" for k, v in metadata.items())


def _encode_ffmpeg(frames, size, fps, path, crf, sound, metadata, on_frame) -> None:
    width, height = size
    even_w, even_h = width + width % 2, height + height % 2
    with tempfile.TemporaryDirectory(prefix="rerender-encode-") as scratch:
        inputs = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{even_w}x{even_h}", "-r", str(frame_rate(fps)),
                  "-i", "-"]
        maps, index = ["-map", "0:v:0"], 1
        if sound is not None:
            waveform, rate = sound
            raw = Path(scratch) / "sound.f32"
            np.ascontiguousarray(waveform.T, np.float32).tofile(raw)
            inputs += ["-f", "f32le", "-ar", str(rate), "-ac", str(waveform.shape[0]), "-i", str(raw)]
            maps += ["-map", f"{index}:a:0", "-c:a", "aac", "-b:a", str(AAC_BITRATE)]
            index += 1
        if metadata:
            # A file, not -metadata arguments: a workflow can be longer than one command-line argument may be.
            tags = Path(scratch) / "tags.txt"
            tags.write_text(_ffmetadata(metadata), encoding="utf-8")
            inputs += ["-f", "ffmetadata", "-i", str(tags)]
            maps += ["-map_metadata", str(index)]
        command = [ffmpeg_executable(), "-y", "-v", "error", *inputs, *maps, "-c:v", "libx264", "-pix_fmt", "yuv420p",
                   "-crf", str(crf), "-preset", X264_PRESET, "-movflags", "+faststart+use_metadata_tags",
                   "-f", "mp4", str(path)]
        errors = tempfile.TemporaryFile()
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            for number, frame in enumerate(frames):
                process.stdin.write(np.ascontiguousarray(even_size(frame)).tobytes())
                if on_frame is not None:
                    on_frame(number)
            process.stdin.close()
            code = process.wait()
        except BrokenPipeError:
            code = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            errors.close()
        if code != 0:
            raise RuntimeError(f"ffmpeg could not write the video: {message}")


def _encode_opencv(frames, size, fps, path, on_frame) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open an mp4 writer at {Path(path).parent}.")
    try:
        for number, frame in enumerate(frames):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if on_frame is not None:
                on_frame(number)
    finally:
        writer.release()
