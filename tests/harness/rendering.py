"""Helpers to drive the key-frame nodes and renderer the way a workflow does."""
from __future__ import annotations

import torch

from .models import tiny_conditioning

CONSTRAINT_NODES = ("RerenderCrossFrameAttention", "RerenderShapeFusion", "RerenderPixelFusion", "RerenderColorAdaIN")


def node_defaults(host, node: str) -> dict:
    """The default value of every widget input of a registered node."""
    spec = host.nodes.NODE_CLASS_MAPPINGS[node].INPUT_TYPES()["required"]
    return {name: options[1]["default"] for name, options in spec.items() if len(options) > 1 and "default" in options[1]}


def constrain(host, model, vae, *nodes, **overrides):
    """Apply constraint nodes with their default settings (``overrides`` replace some)."""
    for node in nodes:
        inputs = dict(node_defaults(host, node), **overrides)
        if node == "RerenderPixelFusion":
            inputs["vae"] = vae
        (model,) = host.call(node, model=model, **inputs)
    return model


def render(pack, model, vae, frames, steps=6, cfg=3.0, denoise=0.75, seed=3, anchor_only=False, flow="medium",
           positive=None, negative=None, **options):
    """Render key frames [N, 3, H, W] with the renderer as the node does (inference mode).

    ``flow``: a DIS preset name, or any flow estimator.
    Returns (images [N, 3, H, W], latents, renderer).
    """
    keyframes = pack.keyframes.renderer
    estimator = pack.flow.dis.DisFlow(flow) if isinstance(flow, str) else flow
    renderer = keyframes.KeyframeRenderer(model, vae, positive or tiny_conditioning(1), negative or tiny_conditioning(2),
                                          estimator,
                                          keyframes.SamplingSettings(seed, steps, cfg, "ddim_uniform", denoise), **options)
    with torch.inference_mode():
        images, latents = renderer.render(frames, anchor_only)
    return images, latents, renderer


def warped_mse(pack, images: torch.Tensor, forward: torch.Tensor, border: int = 8) -> float:
    """Pixel-MSE between consecutive frames after aligning frame k+1 to frame k by the flow.

    Args:
        images: [N, 3, H, W]; forward: [N−1, 2, H, W] flow from frame k to k+1. A border is skipped.
    """
    aligned = pack.flow.warp.warp(images[1:], forward)
    inner = (..., slice(border, -border), slice(border, -border))
    return (aligned - images[:-1])[inner].pow(2).mean().item()
