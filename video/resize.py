"""Resizing an IMAGE batch with Load Video's size rule, for frames that were loaded elsewhere."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .io import fit_size

# Float32 working memory for one chunk of frames (its input and output copies together).
CHUNK_BYTES = 256 * 2**20


def resize_frames(images: torch.Tensor, short_side: int, name: str = "frames",
                  chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """Resize every frame so the short side is ``short_side`` and each side a multiple of 64.

    The size follows ``video.io.fit_size``, the rule Rerender: Load Video applies while decoding
    (``short_side`` 0 or less keeps the size).

    Args:
        images: a ComfyUI IMAGE batch, [frames, height, width, channels] with any number of
            channels (RGB, RGBA, ...), floating point with values in 0..1, on any device.
        short_side: the target length of the shorter side, in pixels.
        name: how errors refer to the input.
        chunk_bytes: the float32 working memory per chunk of frames; the batch is resized a chunk
            at a time into one preallocated output, so memory stays bounded on long clips.

    Returns:
        [frames, new_height, new_width, channels], the input's dtype and device, clamped to 0..1.
        Area averaging where both sides shrink, antialiased bicubic otherwise. The input itself
        is returned when the size does not change.
    """
    check_image_batch(images, name)
    count, height, width, channels = images.shape
    new_width, new_height = fit_size(width, height, short_side)
    if (new_height, new_width) == (height, width):
        return images
    shrinking = new_height <= height and new_width <= width
    per_frame = 4 * channels * (height * width + new_height * new_width)
    step = max(1, chunk_bytes // per_frame)
    resized = torch.empty((count, new_height, new_width, channels), dtype=images.dtype, device=images.device)
    for start in range(0, count, step):
        chunk = images[start:start + step].movedim(-1, 1).float()
        if shrinking:
            chunk = F.interpolate(chunk, size=(new_height, new_width), mode="area")
        else:
            chunk = F.interpolate(chunk, size=(new_height, new_width), mode="bicubic", align_corners=False,
                                  antialias=True)
        resized[start:start + step] = chunk.clamp_(0.0, 1.0).movedim(1, -1).to(images.dtype)
    return resized


def check_image_batch(images, name: str) -> None:
    """Raise ``ValueError`` unless ``images`` is a non-empty floating-point IMAGE batch [N, H, W, C]."""
    if not isinstance(images, torch.Tensor):
        hint = " (a LATENT: decode it with VAE Decode first)" if isinstance(images, dict) and "samples" in images else ""
        raise ValueError(f"{name} must be an IMAGE batch (a tensor [frames, height, width, channels]); "
                         f"got {type(images).__name__}{hint}.")
    if images.ndim != 4:
        hint = " (a MASK? turn it into an image with Convert Mask to Image)" if images.ndim == 3 else ""
        raise ValueError(f"{name} must be an IMAGE batch [frames, height, width, channels]; got a tensor of shape "
                         f"{tuple(images.shape)}{hint}.")
    if not images.is_floating_point():
        raise ValueError(f"{name} must hold floating-point values in 0..1 (ComfyUI's IMAGE); got {images.dtype}.")
    if 0 in images.shape:
        raise ValueError(f"{name} is empty: shape {tuple(images.shape)}.")
