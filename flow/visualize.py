"""Colour-wheel pictures of flow fields (Middlebury colour coding)."""
from __future__ import annotations

import torch
from torchvision.utils import flow_to_image


def flow_to_color(flow: torch.Tensor, occluded: torch.Tensor | None = None) -> torch.Tensor:
    """Colour-code flows: hue is the direction, saturation the length.

    Lengths are normalised by the largest vector in the whole batch, so the frames of one clip
    stay comparable.

    Args:
        flow: [B, 2, H, W] in pixels.
        occluded: optional [B, 1, H, W] in [0, 1]; occluded pixels are drawn black.

    Returns:
        [B, 3, H, W] float RGB in [0, 1].
    """
    colors = flow_to_image(flow.float()).float() / 255.0
    if occluded is not None:
        colors = colors * (1.0 - occluded.to(colors))
    return colors
