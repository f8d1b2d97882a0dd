"""The guides of EbSynth-style synthesis, as Rerender uses them.

Images are [B, C, H, W] float in EbSynth's 0..255 units, so that patch errors and the uniformity
weight keep the reference's scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dataclasses import dataclass

from ..flow.warp import warp


@dataclass(frozen=True)
class GuideWeights:
    """How much each guide counts (EbSynth divides each by the guide's channel count). The defaults
    are Rerender's but for colour, 12 instead of 6 (higher mean PSNR on all sixteen interval-styles
    ``bench/propagation_settings.py`` compared, README, at the same steadiness on the twelve held-out
    ones and the same speed), and temporal, 0 instead of 0.5: the key carried along the flow
    (chain.py, ``PropagationSettings.warp_share``) keeps the frames steadier than the temporal guide
    did, and without the guide the synthesis is nearer the style (README "The carried key")."""

    color: float = 12.0
    edge: float = 0.5
    temporal: float = 0.0
    positional: float = 2.0
    style: float = 1.0

    def per_channel(self, device=None) -> torch.Tensor:
        """Weights of the guide channels [colour ×3, edge ×3, temporal ×3, positional ×2] (float32 [11]);
        EbSynth's positional image has a third, constant channel, left out here (it adds nothing to errors)."""
        values = [self.color / 3] * 3 + [self.edge / 3] * 3 + [self.temporal / 3] * 3 + [self.positional / 3] * 2
        return torch.tensor(values, device=device)

_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def edge_guide(images: torch.Tensor) -> torch.Tensor:
    """Per-channel 3x3 Laplacian, clipped to 0..255 as OpenCV's filter2D on 8-bit images does.

    Args:
        images: [B, 3, H, W] in 0..255.
    """
    channels = images.shape[1]
    kernel = _LAPLACIAN.to(images).expand(channels, 1, 3, 3)
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, kernel, groups=channels).clamp(0.0, 255.0)


def coordinate_ramp(batch: int, height: int, width: int, device=None) -> torch.Tensor:
    """The positional guide of a key frame: [B, 2, H, W], x and y scaled to 0..255 over the frame."""
    ys = torch.linspace(0.0, 255.0, height, device=device).view(1, 1, height, 1).expand(batch, 1, height, width)
    xs = torch.linspace(0.0, 255.0, width, device=device).view(1, 1, 1, width).expand(batch, 1, height, width)
    return torch.cat((xs, ys), dim=1).contiguous()


def fill_holes(image: torch.Tensor, holes: torch.Tensor, levels: int = 12) -> torch.Tensor:
    """Fill masked pixels from their surroundings (push-pull: averages of valid pixels over a
    pyramid, coarser levels filling what finer ones miss). Runs on any device.

    Args:
        image: [B, C, H, W] float; holes: [B, 1, H, W] on the same device, 1 = to fill.

    Returns:
        [B, C, H, W] like ``image``. Computed even when there is no hole: checking would make the
        host wait for the GPU on every frame.
    """
    weight = 1.0 - holes.to(image)
    pyramid = [(image * weight, weight)]
    for _ in range(levels):
        value, mass = pyramid[-1]
        if min(value.shape[-2:]) <= 1:
            break
        pyramid.append((F.avg_pool2d(value, 2, ceil_mode=True), F.avg_pool2d(mass, 2, ceil_mode=True)))
    filled_value, filled_mass = pyramid[-1]
    estimate = filled_value / filled_mass.clamp_min(1e-8)
    for value, mass in reversed(pyramid[:-1]):
        coarse = F.interpolate(estimate, size=value.shape[-2:], mode="bilinear", align_corners=False)
        known = value / mass.clamp_min(1e-8)
        certainty = mass.clamp(0.0, 1.0)
        estimate = certainty * known + (1 - certainty) * coarse
    return torch.where(holes.bool().expand_as(image), estimate, image)


def carry(image: torch.Tensor, flow: torch.Tensor, occluded: torch.Tensor) -> torch.Tensor:
    """Move a guide one frame along the flow (nearest, as the reference) and fill what the
    previous frame does not show.

    Args:
        image: [B, C, H, W] at the previous frame; flow: [B, 2, H, W] from the new frame to the
            previous one; occluded: [B, 1, H, W], pixels of the new frame the previous lacks.
    """
    moved = warp(image, flow, mode="nearest")
    outside = _outside(flow)
    return fill_holes(moved, torch.maximum(occluded.to(moved), outside))


def _outside(flow: torch.Tensor) -> torch.Tensor:
    """Pixels whose flow points outside the frame: [B, 1, H, W]."""
    _, _, height, width = flow.shape
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width) + flow[:, 0]
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1) + flow[:, 1]
    return ((xs < -0.5) | (xs > width - 0.5) | (ys < -0.5) | (ys > height - 0.5)).unsqueeze(1).to(flow.dtype)
