"""ComfyUI IMAGE batches ([N, H, W, C], float 0..1) to and from the pack's [N, C, H, W] frames."""
from __future__ import annotations

import torch

from ..flow.frames import check_frames


def image_to_frames(image: torch.Tensor, name: str, rgb_only: bool = True) -> torch.Tensor:
    """IMAGE [N, H, W, C] → frames [N, C, H, W] (float32), checking it is RGB unless ``rgb_only`` is False."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError(f"{name} must be an IMAGE batch; got {type(image).__name__}.")
    frames = image.movedim(-1, 1).float()
    if rgb_only:
        check_frames(frames, name)
    return frames


def frames_to_image(frames: torch.Tensor) -> torch.Tensor:
    """frames [N, C, H, W] → IMAGE [N, H, W, C] on the CPU, clamped to 0..1."""
    return frames.movedim(1, -1).clamp(0.0, 1.0).float().cpu().contiguous()
