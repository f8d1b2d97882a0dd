"""Driving Load/Save Video in tests: which backend they use (PyAV, the ffmpeg command, OpenCV alone),
calling the nodes, finding what they saved, and a Load → Save prompt for the executor or server."""
from __future__ import annotations

import os
import shutil

import pytest

from .rendering import node_defaults

BACKENDS = ("pyav", "ffmpeg", "opencv")


def force_backend(pack, monkeypatch, name: str) -> str:
    """Make the pack's nodes pick ``name`` as the best backend, as on a machine that only has that.

    "ffmpeg" hides PyAV from the pack; "opencv" hides PyAV and empties PATH (no ffmpeg command).
    """
    if name == "pyav":
        if not pack.video.codecs.has_pyav():
            pytest.fail("PyAV is a test dependency (tests/requirements.txt): `make env` installs it")
        return name
    monkeypatch.setattr(pack.video.codecs, "has_pyav", lambda: False)
    if name == "ffmpeg":
        if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
            pytest.fail("ffmpeg and ffprobe are needed (Debian package ffmpeg; `make env` installs it as root)")
    else:
        monkeypatch.setenv("PATH", "")
    assert pack.video.codecs.best_backend() == name
    return name


def load_video(host, **inputs):
    """Call Rerender: Load Video with its widget defaults, ``video`` empty, and ``inputs`` over them."""
    return host.call("RerenderLoadVideo", **{**node_defaults(host, "RerenderLoadVideo"), "video": "", **inputs})


def save_video(host, images, **inputs) -> dict:
    """Call Rerender: Save Video; returns its whole result ({"ui": ..., "result": ...})."""
    return host.nodes.NODE_CLASS_MAPPINGS["RerenderSaveVideo"]().save(images, **inputs)


def saved_path(host, output: dict) -> str:
    """The file Save Video wrote, in the in-process host's output folder, from the node's result or from
    its ui part (what the executor reports per node)."""
    (entry,) = output.get("ui", output)["images"]
    return os.path.join(host.folder_paths().get_output_directory(), entry["subfolder"], entry["filename"])


def load_and_save_prompt(clip, filename_prefix: str, frame_load_cap: int = 0, load_id: str = "1",
                         save_id: str = "2") -> dict:
    """An API prompt: Load Video of ``clip`` at its own size → Save Video with its fps and sound."""
    return {load_id: {"class_type": "RerenderLoadVideo",
                      "inputs": {"video": "", "path": str(clip), "frame_load_cap": frame_load_cap,
                                 "skip_first_frames": 0, "select_every_nth": 1, "short_side": 0, "crop_left": 0,
                                 "crop_right": 0, "crop_top": 0, "crop_bottom": 0}},
            save_id: {"class_type": "RerenderSaveVideo",
                      "inputs": {"images": [load_id, 0], "fps": [load_id, 2], "audio": [load_id, 3],
                                 "filename_prefix": filename_prefix}}}
