"""Import the pack's plain packages (flow/, propagation/, video/) without a ComfyUI host.

The pack's top-level ``__init__`` registers nodes and needs ComfyUI, so it is not executed: the
package is registered by path and its plain sub-packages imported from it.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "rerender_pack"
SHARED_DATA = ROOT.parent / "shared" / "data"


def plain(module: str):
    """``plain("flow.dis")`` → the pack's flow/dis.py module."""
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        sys.modules[NAME] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{NAME}.{module}")


def script(name: str):
    """One of the repository's scripts/ helpers."""
    spec = importlib.util.spec_from_file_location(f"rerender_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_video(path: Path, limit: int | None = None):
    """Frames of a video file as [N, 3, H, W] float RGB in [0, 1]."""
    import cv2
    import numpy as np
    import torch

    capture = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise SystemExit(f"could not read frames from {path}")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
