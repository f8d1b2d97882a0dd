"""Warping images, latents and masks by a dense flow.

Convention (the reference's): a flow ``f`` of shape [B, 2, H, W] holds, for every pixel p = (x, y)
of a *source* frame, the displacement (dx, dy) in pixels to where that point lies in a *target*
frame. ``warp(target_image, f)`` samples the target at p + f(p), which moves the target image
into alignment with the source frame. Sampling uses ``align_corners=True`` (pixel centres at
integer coordinates, normalised by W − 1 and H − 1) and zero padding outside the image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel coordinates [1, 2, H, W]: channel 0 is x (0..W−1), channel 1 is y (0..H−1)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack((xs, ys)).unsqueeze(0)


def magnitude(flow: torch.Tensor) -> torch.Tensor:
    """Vector lengths [B, 1, H, W] of a flow [B, 2, H, W].

    ``torch.hypot`` of the two planes: a norm reduced over the size-2 channel axis is two orders
    of magnitude slower on the CPU.
    """
    return torch.hypot(flow[:, 0:1], flow[:, 1:2])


def flow_to_sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """The ``grid_sample`` grid [B, H, W, 2] in [−1, 1] that reads at p + flow(p), float32 on the flow's device.

    Always float32: in bfloat16 the coordinates of a 512-px frame are off by up to two pixels
    (8 significant bits), so an identity warp would move a quarter of the pixels.
    """
    flow = flow.float()
    _, _, height, width = flow.shape
    coords = pixel_grid(height, width, flow.device, torch.float32) + flow
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=flow.device)
    return (coords.permute(0, 2, 3, 1) * scale) - 1.0


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample ``image`` at p + flow(p).

    Args:
        image: [B, C, H, W] float of any precision, on any device (images, latents or masks).
        flow: [B, 2, H, W] in pixels of ``image``'s resolution, source→target convention above;
            any device and float dtype (it is moved to ``image``'s device).
        mode: ``"bilinear"`` for images and flows, ``"nearest"`` for latents x̂0, guides and masks.

    Returns:
        [B, C, H, W] with ``image``'s dtype and device; points that land outside the image read zero.
    """
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"warp: image {tuple(image.shape)} and flow {tuple(flow.shape)} must share batch and size")
    grid = flow_to_sampling_grid(flow.to(image.device))
    # Sampled in float32: the grid must be float32 (see above) and grid_sample wants one dtype for both.
    warped = F.grid_sample(image.float(), grid, mode=mode, padding_mode="zeros", align_corners=True)
    return warped.to(image.dtype)


def resize_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinearly resample a flow [B, 2, H, W] (float, any device) to [B, 2, height, width] on the same
    device, scaling the vectors to match."""
    _, _, h, w = flow.shape
    resized = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    scale = torch.tensor([width / w, height / h], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    return resized * scale


def flow_to_latent(flow: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """A pixel flow [B, 2, H, W] at latent resolution [B, 2, H/factor, W/factor], in latent pixels.

    The reference divides the flow by 8 and bilinearly down-samples it by 8.
    """
    _, _, h, w = flow.shape
    if h % factor or w % factor:
        raise ValueError(f"flow_to_latent: size {w}x{h} is not divisible by {factor}")
    return resize_flow(flow, h // factor, w // factor)
