"""Choosing which of Load/Save Video's backends a test runs (PyAV, the ffmpeg command, OpenCV alone)."""
from __future__ import annotations

import shutil

import pytest

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
