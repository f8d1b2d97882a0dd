"""Middlebury ``.flo`` files (the format of the Sintel ground truth)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

_MAGIC = 202021.25


def read_flo(path: str | Path) -> torch.Tensor:
    """Read a ``.flo`` file into a [2, H, W] float32 tensor (u = x displacement, v = y)."""
    with open(path, "rb") as handle:
        magic = np.fromfile(handle, np.float32, count=1)
        if magic.size != 1 or magic[0] != _MAGIC:
            raise ValueError(f"{path} is not a Middlebury .flo file")
        width, height = np.fromfile(handle, np.int32, count=2)
        data = np.fromfile(handle, np.float32, count=2 * width * height)
    return torch.from_numpy(data.reshape(height, width, 2).copy()).permute(2, 0, 1)


def write_flo(path: str | Path, flow: torch.Tensor) -> None:
    """Write a [2, H, W] flow as a ``.flo`` file."""
    array = flow.permute(1, 2, 0).contiguous().float().cpu().numpy()
    with open(path, "wb") as handle:
        np.array([_MAGIC], np.float32).tofile(handle)
        np.array(array.shape[1::-1], np.int32).tofile(handle)
        array.tofile(handle)
