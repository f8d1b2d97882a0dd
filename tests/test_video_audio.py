"""Sound through Load Video and Save Video, H.264 files, the embedded workflow, long-clip limits, cancel.

Each backend (PyAV, the ffmpeg command, OpenCV alone) is forced in turn, on both hosts.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from harness.media import stream_facts, tone_amplitude, write_clip_with_tone
from harness.video_nodes import force_backend, load_and_save_prompt, load_video, save_video, saved_path

FPS, FRAMES = 20.0, 24
ONE_FRAME = 1 / FPS
SOUND_BACKENDS = ("pyav", "ffmpeg")


@pytest.fixture(scope="module")
def tone_clip(tmp_path_factory):
    return write_clip_with_tone(tmp_path_factory.mktemp("clips") / "tone.mp4", frames=FRAMES, width=64, height=48, fps=FPS)


@pytest.fixture(scope="module")
def silent_clip(tmp_path_factory):
    return write_clip_with_tone(tmp_path_factory.mktemp("clips") / "silent.mp4", frames=10, width=64, height=48,
                                fps=FPS, tone_hz=None)


def load(host, clip, **inputs):
    """Load Video of ``clip`` at its own size (``inputs`` override)."""
    return load_video(host, **dict({"path": str(clip), "short_side": 0}, **inputs))


save = save_video


def duration(sound: dict) -> float:
    return sound["waveform"].shape[-1] / sound["sample_rate"]


def amplitude(sound: dict, start_s: float, length_s: float = 0.1) -> float:
    """The tone's amplitude (√2 × RMS) in a window of the left channel."""
    rate = sound["sample_rate"]
    window = sound["waveform"][0, 0, round(start_s * rate):round((start_s + length_s) * rate)]
    return float(window.pow(2).mean().sqrt()) * 2 ** 0.5


@pytest.mark.parametrize("backend", SOUND_BACKENDS)
def test_load_video_gives_the_sound_of_exactly_the_loaded_span(host, pack, monkeypatch, tone_clip, backend):
    force_backend(pack, monkeypatch, backend)
    frames, count, fps, sound = load(host, tone_clip)
    assert count == FRAMES and sound["waveform"].dtype == torch.float32 and sound["waveform"].shape[:2] == (1, 2)
    assert sound["sample_rate"] == 44100
    assert duration(sound) == pytest.approx(count / fps, abs=ONE_FRAME)
    # A sub-span: frames 6, 8, ..., 20 of the clip, i.e. 0.3 s to 1.1 s; every 2nd frame keeps the duration.
    frames, count, fps, sound = load(host, tone_clip, skip_first_frames=6, frame_load_cap=8, select_every_nth=2)
    assert count == 8 and fps == pytest.approx(FPS / 2)
    assert duration(sound) == pytest.approx(count / fps, abs=ONE_FRAME)
    assert duration(sound) == pytest.approx(0.8, abs=ONE_FRAME)
    for offset in (0.05, 0.6):   # the sound starts 0.3 s into the clip, not at its start
        assert amplitude(sound, offset) == pytest.approx(tone_amplitude(0.3 + offset + 0.05, FRAMES / FPS), abs=0.04)


@pytest.mark.parametrize("backend", SOUND_BACKENDS + ("opencv",))
def test_a_clip_without_sound_gives_silence_that_saves(host, pack, monkeypatch, silent_clip, backend):
    force_backend(pack, monkeypatch, backend)
    frames, count, fps, sound = load(host, silent_clip)
    assert sound["sample_rate"] == 44100 and sound["waveform"].shape[:2] == (1, 1)
    assert duration(sound) == pytest.approx(count / fps, abs=1 / 44100) and not sound["waveform"].any()
    result = save(host, frames, fps=fps, filename_prefix=f"tests/silent_{backend}", audio=sound)
    assert os.path.isfile(saved_path(host, result))


@pytest.mark.parametrize("backend", SOUND_BACKENDS)
@pytest.mark.parametrize("width, height", [(64, 48), (65, 47)])
def test_save_video_writes_h264_yuv420p_with_aac_of_the_videos_duration(host, pack, monkeypatch, tone_clip, backend,
                                                                       width, height):
    force_backend(pack, monkeypatch, backend)
    _, _, _, sound = load(host, tone_clip)    # 1.2 s of sound
    for frames in (12, 30):                   # cut to 0.6 s, padded to 1.5 s
        images = torch.rand(frames, height, width, 3)
        result = save(host, images, fps=FPS, filename_prefix=f"tests/aac_{backend}", audio=sound)
        facts = stream_facts(saved_path(host, result))
        assert facts["streams"] == ["video", "audio"]
        video, audio = facts["video"], facts["audio"]
        assert (video["codec"], video["pix_fmt"], video["frames"]) == ("h264", "yuv420p", frames)
        assert (video["width"], video["height"]) == (width + width % 2, height + height % 2)
        assert audio["codec"] == "aac" and audio["channels"] == 2
        assert audio["duration"] == pytest.approx(frames / FPS, abs=ONE_FRAME)


def test_save_video_without_sound_writes_one_stream(host, pack, monkeypatch):
    force_backend(pack, monkeypatch, "pyav")
    facts = stream_facts(saved_path(host, save(host, torch.rand(5, 32, 32, 3), fps=10.0, filename_prefix="tests/mute")))
    assert facts["streams"] == ["video"]


def test_crf_sets_the_quality(host, pack, monkeypatch):
    force_backend(pack, monkeypatch, "pyav")
    smooth = torch.linspace(0, 1, 64)[None, :, None, None].expand(10, 64, 64, 3) * torch.linspace(0.5, 1, 10)[:, None, None, None]
    sizes = [os.path.getsize(saved_path(host, save(host, smooth + 0.05 * torch.rand_like(smooth), fps=10.0,
                                                   filename_prefix="tests/crf", crf=crf))) for crf in (10, 35)]
    assert sizes[0] > 2 * sizes[1]
    with pytest.raises(ValueError, match="crf must be between 0 and 51"):
        save(host, smooth, fps=10.0, filename_prefix="tests/crf", crf=60)


@pytest.mark.parametrize("backend", SOUND_BACKENDS)
def test_the_saved_file_holds_the_prompt_and_workflow_unless_disabled(host, pack, monkeypatch, tone_clip, backend):
    import json

    from comfy.cli_args import args

    force_backend(pack, monkeypatch, backend)
    prompt = load_and_save_prompt(tone_clip, "tests/meta", frame_load_cap=6, load_id="1", save_id="7")
    workflow = {"nodes": [{"id": 1, "type": "RerenderLoadVideo"}, {"id": 7, "type": "RerenderSaveVideo"}],
                "links": [], "note": "quotes \" = ; # \\ and\nnewlines survive"}
    outputs = host.execute(prompt, workflow=workflow)
    tags = stream_facts(saved_path(host, outputs["7"]))["tags"]
    assert sorted(json.loads(tags["prompt"])) == ["1", "7"]
    assert json.loads(tags["workflow"]) == workflow
    monkeypatch.setattr(args, "disable_metadata", True)
    tags = stream_facts(saved_path(host, host.execute(prompt, workflow=workflow)["7"]))["tags"]
    assert "prompt" not in tags and "workflow" not in tags


def test_without_pyav_or_ffmpeg_the_video_is_written_and_the_loss_is_said(host, pack, monkeypatch, tone_clip, caplog):
    force_backend(pack, monkeypatch, "opencv")
    frames, count, fps, sound = load(host, tone_clip, frame_load_cap=8)
    assert not sound["waveform"].any(), "OpenCV cannot read sound: the audio output is silence"
    with caplog.at_level("WARNING"):
        result = save(host, frames, fps=fps, filename_prefix="tests/nocodec", audio=sound)
    assert "sound was dropped" in caplog.text and "browsers cannot preview" in caplog.text
    assert "browsers cannot preview" in result["ui"]["text"][0]
    monkeypatch.undo()
    facts = stream_facts(saved_path(host, result))
    assert facts["streams"] == ["video"] and facts["video"]["codec"] == "mpeg4" and facts["video"]["frames"] == 8


def test_a_long_clip_stops_before_decoding_with_the_figure_and_the_fix(host, pack, monkeypatch, tone_clip):
    decoded = []
    monkeypatch.setattr(pack.nodes.video_io, "read_video", lambda *a, **k: decoded.append(a))
    estimate = pack.video.io.planned_load(tone_clip, short_side=0)
    assert (estimate.frames, estimate.width, estimate.height) == (FRAMES, 64, 48)
    monkeypatch.setattr(pack.nodes.video_io, "available_ram", lambda: estimate.total_bytes - 1)
    before = {kind: sorted(os.walk(getattr(host.folder_paths(), f"get_{kind}_directory")())) for kind in ("output", "temp")}
    with pytest.raises(MemoryError) as error:
        load(host, tone_clip)
    message = str(error.value)
    for name in ("frame_load_cap", "select_every_nth", "short_side"):
        assert name in message
    assert f"{FRAMES} frames of 64x48" in message and f"frame_load_cap to {FRAMES - 1} or less" in message
    assert not decoded, "nothing may be decoded before the check"
    after = {kind: sorted(os.walk(getattr(host.folder_paths(), f"get_{kind}_directory")())) for kind in ("output", "temp")}
    assert after == before, "nothing may be written"
    # Fewer frames fit, and then the clip loads.
    monkeypatch.undo()
    monkeypatch.setattr(pack.nodes.video_io, "available_ram", lambda: estimate.total_bytes)
    assert load(host, tone_clip)[1] == FRAMES


def test_the_estimate_counts_frames_flow_and_output(pack):
    budget = pack.video.budget
    estimate = budget.LoadEstimate(frames=100, width=512, height=512)
    # The figure: 13–16 MB per 512² frame once flow and output are counted.
    assert 13e6 <= estimate.bytes_per_frame <= 16e6
    assert budget.loaded_frame_count(300, 0, 10, 3) == 97 and budget.loaded_frame_count(300, 50, 10, 3) == 50


@pytest.mark.parametrize("where", ["load", "save"])
def test_cancel_stops_the_loop_and_leaves_no_file(host, pack, monkeypatch, tone_clip, where):
    import comfy.model_management as mm

    force_backend(pack, monkeypatch, "pyav")
    frames, _, fps, sound = load(host, tone_clip)
    output = host.folder_paths().get_output_directory()
    folder = os.path.join(output, "tests", f"cancel_{where}")
    os.makedirs(folder, exist_ok=True)
    calls = []
    real = pack.host.progress.check_interrupted

    def cancel_at_third(*_):
        calls.append(1)
        if len(calls) == 3:
            mm.interrupt_current_processing(True)
        real()

    monkeypatch.setattr(pack.host.progress, "check_interrupted", cancel_at_third)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            if where == "load":
                load(host, tone_clip)
            else:
                save(host, frames, fps=fps, filename_prefix=f"tests/cancel_{where}/video", audio=sound)
    finally:
        mm.interrupt_current_processing(False)
    assert len(calls) == 3, "the loop stopped at the step the user cancelled"
    assert os.listdir(folder) == []


@pytest.mark.parametrize("audio, message", [
    ("not audio", "audio must be an AUDIO"),
    ({"waveform": torch.zeros(4), "sample_rate": 44100}, r"waveform must be \[batch, channels, samples\]"),
    ({"waveform": torch.zeros(1, 2, 100), "sample_rate": 0}, "sample rate must be a positive"),
    ({"waveform": torch.zeros(1, 10, 100), "sample_rate": 44100}, "AAC carries at most 8"),
])
def test_bad_audio_is_explained_and_writes_nothing(host, pack, monkeypatch, audio, message):
    force_backend(pack, monkeypatch, "pyav")
    folder = os.path.join(host.folder_paths().get_output_directory(), "tests", "wrong_audio")
    os.makedirs(folder, exist_ok=True)
    with pytest.raises(ValueError, match=message):
        save(host, torch.rand(3, 32, 32, 3), fps=10.0, filename_prefix="tests/wrong_audio/video", audio=audio)
    assert os.listdir(folder) == []
