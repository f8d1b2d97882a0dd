"""The README's demo command produces a playable mp4 without any model weights."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.host import REPO
from harness.media import video_facts


@pytest.mark.server
@pytest.mark.slow
def test_demo_writes_a_playable_mp4(host, tmp_path):
    env = dict(os.environ, COMFYUI_PATH=str(host.root))
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--output", str(tmp_path), "--frames", "16"],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    path = result.stdout.strip().splitlines()[-1]
    assert path.startswith(str(tmp_path)) and path.endswith(".mp4")
    count, _, fps, _ = video_facts(path)
    assert count == 16 and fps == pytest.approx(20.0)
