"""Flows made by other packs, turned into a ``VideoFlow``.

comfyui_controlnet_aux's "Unimatch Optical Flow" node outputs ``OPTICAL_FLOW``: a float tensor
[N−1, H, W, 2] in pixels, one flow per consecutive pair and one direction only. With its default
settings each flow points from frame i to frame i+1 (forward); with ``backward_flow`` or
``bidirectional_flow`` switched on it points from frame i+1 to frame i. The other direction is
recovered by inverting the flow (fixed-point iteration r(q) = −f(q + r(q))), and occlusions by
the usual forward–backward check on the pair.
"""
from __future__ import annotations

import torch

from .occlusion import forward_backward_occlusion
from .video_flow import VideoFlow
from .warp import warp

DIRECTIONS = ("auto", "forward", "backward")


def invert_flow(flow: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """Approximate the reverse of a flow field.

    Args:
        flow: [B, 2, H, W] source→target flow in pixels.

    Returns:
        [B, 2, H, W] target→source flow; where the source is occluded the value is a smooth
        continuation that the forward–backward check then flags.
    """
    reverse = -flow
    for _ in range(iterations):
        reverse = -warp(flow, reverse)
    return reverse


def _photometric_error(flow: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> float:
    return (warp(target, flow) - source).abs().mean().item()


def video_flow_from_optical_flow(optical_flow: torch.Tensor, frames: torch.Tensor | None = None,
                                 direction: str = "auto") -> VideoFlow:
    """Convert an ``OPTICAL_FLOW`` tensor into a ``VideoFlow``.

    Args:
        optical_flow: [N−1, H, W, 2] float, pixels.
        frames: optional [N, 3, H, W] RGB in [0, 1] of the same clip; with ``direction="auto"``
            they decide which way the flows point (the one that aligns the frames better).
        direction: ``"auto"`` (forward when no frames are given, as Unimatch's default),
            ``"forward"`` (frame i → i+1) or ``"backward"`` (frame i+1 → i).
    """
    if not isinstance(optical_flow, torch.Tensor) or optical_flow.ndim != 4 or optical_flow.shape[-1] != 2:
        shape = tuple(optical_flow.shape) if isinstance(optical_flow, torch.Tensor) else type(optical_flow).__name__
        raise ValueError("optical_flow must be the OPTICAL_FLOW output of the Unimatch Optical Flow node, "
                         f"a [pairs, height, width, 2] tensor; got {shape}.")
    if direction not in DIRECTIONS:
        raise ValueError(f"Unknown optical flow direction '{direction}': use one of {', '.join(DIRECTIONS)}.")
    flows = optical_flow.permute(0, 3, 1, 2).float().cpu()
    if frames is not None:
        if frames.shape[0] != flows.shape[0] + 1 or frames.shape[-2:] != flows.shape[-2:]:
            raise ValueError(f"optical_flow holds {flows.shape[0]} flows of {flows.shape[-1]}x{flows.shape[-2]} but the "
                             f"frames are {frames.shape[0]} of {frames.shape[-1]}x{frames.shape[-2]}: "
                             "compute the flow on the same clip (N frames give N−1 flows).")
        if direction == "auto":
            frames = frames.float().cpu()
            as_forward = _photometric_error(flows, frames[:-1], frames[1:])
            as_backward = _photometric_error(flows, frames[1:], frames[:-1])
            direction = "forward" if as_forward <= as_backward else "backward"
    if direction in ("auto", "forward"):
        forward, backward = flows, invert_flow(flows)
    else:
        forward, backward = invert_flow(flows), flows
    occluded_forward, occluded_backward = forward_backward_occlusion(forward, backward)
    return VideoFlow(forward, backward, occluded_forward, occluded_backward, "unimatch")
