"""Occlusion masks from forward–backward consistency, and the mask shaping Rerender applies.

Masks are float tensors [B, 1, H, W] with 1 = occluded / invalid and 0 = visible, unless a
function says otherwise.
"""
from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F

from .warp import magnitude, warp

# UnFlow constants, as in the reference.
ALPHA = 0.01
BETA = 0.5


def occlusion_from_consistency(flow: torch.Tensor, reverse_flow: torch.Tensor,
                               alpha: float = ALPHA, beta: float = BETA) -> torch.Tensor:
    """Pixels of ``flow``'s source frame that are not visible in its target frame.

    A pixel p is occluded when ‖f(p) + r(p + f(p))‖ > α·(‖f(p)‖ + ‖r(p)‖) + β, with the reverse
    flow read (bilinearly) where p lands in the target; both magnitudes on the right are taken at
    the same pixel p, as in the reference. Points that leave the frame read a zero reverse flow
    and are flagged as soon as they move more than about β pixels.

    Args:
        flow: [B, 2, H, W] source→target flow in pixels.
        reverse_flow: [B, 2, H, W] target→source flow in pixels.

    Returns:
        [B, 1, H, W] float, 1 where occluded.
    """
    reverse_at_target = warp(reverse_flow, flow)
    mismatch = magnitude(flow + reverse_at_target)
    bound = alpha * (magnitude(flow) + magnitude(reverse_flow)) + beta
    return (mismatch > bound).to(flow.dtype)


def forward_backward_occlusion(forward: torch.Tensor, backward: torch.Tensor,
                               alpha: float = ALPHA, beta: float = BETA) -> tuple[torch.Tensor, torch.Tensor]:
    """Occlusion masks for both frames of each pair.

    Args:
        forward: [B, 2, H, W] flow from frame a to frame b.
        backward: [B, 2, H, W] flow from frame b to frame a.

    Returns:
        (occluded_a, occluded_b): [B, 1, H, W] each; occluded_a marks pixels of a not visible in b,
        occluded_b marks pixels of b not visible in a.
    """
    return (occlusion_from_consistency(forward, backward, alpha, beta),
            occlusion_from_consistency(backward, forward, alpha, beta))


def dilate_and_feather(occluded: torch.Tensor) -> torch.Tensor:
    """Grow an occlusion mask by 4 px and soften its edge, as the reference's blend masks.

    B = clamp(GaussianBlur_9x9,σ=18(MaxPool_9x9(O)) + O, 0, 1).

    Args:
        occluded: [B, 1, H, W] in [0, 1].

    Returns:
        [B, 1, H, W] in [0, 1].
    """
    grown = F.max_pool2d(occluded, kernel_size=9, stride=1, padding=4)
    soft = kornia.filters.gaussian_blur2d(grown, (9, 9), (18.0, 18.0), border_type="reflect")
    return (soft + occluded).clamp(0.0, 1.0)


def latent_validity(invalid: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Reduce a soft pixel invalidity mask to latent size: a latent pixel is as valid as its
    least valid pixel in the 8×8 block it covers.

    Returns ``1 − MaxPool_8x8(invalid)``: [B, 1, H/8, W/8], 1 = valid.
    """
    return 1.0 - F.max_pool2d(invalid, kernel_size=factor, stride=factor)
