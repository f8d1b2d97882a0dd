"""Synthetic clips with known motion."""
from __future__ import annotations

import kornia
import torch

from .media import paper_grain


def textured(height: int = 48, width: int = 64, seed: int = 0, cell: int = 4) -> torch.Tensor:
    """A smooth random texture [1, 3, H, W] in [0, 1]: random colours every ``cell`` pixels,
    bicubically interpolated (smooth, so bilinear sampling is well behaved)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(height // cell, 2), max(width // cell, 2), generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True).clamp(0, 1)


def sample_at(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bicubic samples of ``image`` [1, C, h, w] at pixel coordinates x, y [H, W] → [1, C, H, W] in [0, 1]
    (border pixels repeat outside). For frames cut from a larger image at sub-pixel offsets, which
    the pack's ``flow.warp.warp`` (an image read at its own size) does not do."""
    _, _, height, width = image.shape
    grid = torch.stack((x * 2 / (width - 1) - 1, y * 2 / (height - 1) - 1), dim=-1).float()[None]
    return torch.nn.functional.grid_sample(image, grid, mode="bicubic", padding_mode="border",
                                           align_corners=True).clamp(0, 1)


def constant_flow(dx: float, dy: float, height: int = 48, width: int = 64, batch: int = 1) -> torch.Tensor:
    """A flow [batch, 2, H, W] that moves every pixel by (dx, dy)."""
    flow = torch.zeros(batch, 2, height, width)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def shifted_clip(frames: int = 4, dx: int = 2, dy: int = 1, height: int = 48, width: int = 64, seed: int = 0,
                 cell: int = 4):
    """A texture translated by (dx, dy) px per frame.

    Returns:
        (clip [N, 3, H, W] in [0, 1], forward flow [N−1, 2, H, W] = (dx, dy) everywhere).
    """
    margin_y, margin_x = 4 + abs(dy) * frames, 4 + abs(dx) * frames
    big = textured(height + 2 * margin_y, width + 2 * margin_x, seed, cell)
    clip = torch.cat([big[..., margin_y - i * dy:margin_y - i * dy + height, margin_x - i * dx:margin_x - i * dx + width]
                      for i in range(frames)])
    return clip, constant_flow(dx, dy, height, width, batch=frames - 1)


def grained_clip(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """11 frames of soft texture moving 3 px right and 1 down per frame, a style of them, and a
    paper grain fixed on the screen (the screen-texture tests).

    Returns:
        (clip [11, 3, 96, 128] in [0, 1], style [11, 3, 96, 128]: the clip inverted into
        [0.2, 0.8], grain [1, 1, 96, 128] from ``media.paper_grain`` with seed ``seed`` + 1).
    """
    clip, _ = shifted_clip(frames=11, dx=3, dy=1, height=96, width=128, cell=8, seed=seed)
    clip = kornia.filters.gaussian_blur2d(clip, (13, 13), (2.0, 2.0))
    return clip, 0.2 + 0.6 * (1 - clip), paper_grain(96, 128, seed=seed + 1)
