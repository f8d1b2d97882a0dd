"""Checks on the frames given to flow estimation, with errors that say what to change."""
from __future__ import annotations

import torch


def check_frames(frames: torch.Tensor, name: str = "frames", min_count: int = 1) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``frames`` is [N, 3, H, W] with N ≥ ``min_count``.

    Args:
        frames: RGB frames [N, 3, H, W], float in [0, 1].
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"{name} must be a batch of images [frames, channels, height, width]; got {shape}.")
    channels = frames.shape[1]
    if channels == 1:
        raise ValueError(f"{name} are greyscale (1 channel): convert them to RGB first "
                         "(for example with an 'Image to RGB' node).")
    if channels == 4:
        raise ValueError(f"{name} have an alpha channel (RGBA): give RGB images, "
                         "for example by loading the frames without alpha or dropping the alpha channel.")
    if channels != 3:
        raise ValueError(f"{name} have {channels} channels; give RGB images (3 channels).")
    if frames.shape[0] == 0:
        raise ValueError(f"{name} is empty: connect a batch with at least {min_count} frame(s).")
    if frames.shape[0] < min_count:
        raise ValueError(f"{name} hold {frames.shape[0]} frame(s); optical flow needs at least {min_count}: "
                         "connect the whole clip as one image batch.")


def check_same_size(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless the two [N, C, H, W] batches have the same height and width."""
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"{name_a} are {a.shape[-1]}x{a.shape[-2]} but {name_b} are {b.shape[-1]}x{b.shape[-2]}: "
                         "resize them to the same size first.")
