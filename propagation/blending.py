"""Temporal-aware blending of the two propagations of a key interval.

For frame c between keys b and e, A is the propagation from b and B the one from e, each with its
patch-error map. Following Rerender (after Jamriška et al. 2019):
  1. selection: take B where w_B·E_A ≥ w_A·E_B (errors weighted by the distance to each key), made
     sticky along the flow: once a pixel switched to B it stays B along its trajectory;
  2. histogram-preserving blend in Lab: A and B standardised per channel, mixed by the temporal
     weights, re-standardised to the statistics of the selected (min-error) image;
  3. optionally, gradient-domain (screened Poisson) fusion: the blend's colours with the selected
     image's gradients, solved exactly with a DCT (mirrored FFT).
Images are [B, 3, H, W] RGB in [0, 1].
"""
from __future__ import annotations

import kornia
import torch

from ..flow.warp import warp
from .synthesis import precise_dtype

POISSON_WEIGHTS = (2.5, 0.5, 0.5)   # L, a, b
GRADIENT_CLIP = 100.0               # in 8-bit Lab units, as the reference


def blend_weights(frame: int, start: int, end: int) -> tuple[float, float]:
    """(w_A, w_B): the weight of the propagation from ``start`` and from ``end`` at ``frame``."""
    w_b = (frame - start) / (end - start)
    return 1.0 - w_b, w_b


def selection(error_a: torch.Tensor, error_b: torch.Tensor, w_a: float, w_b: float,
              previous: torch.Tensor | None = None, flow_to_previous: torch.Tensor | None = None) -> torch.Tensor:
    """Which propagation each pixel takes: 1 = B, 0 = A ([B, 1, H, W] float).

    Each error map must belong to the same frame as its image (the reference reads B's errors in
    mirrored time order; that is not reproduced). ``previous`` (the selection of the frame before,
    in A's direction) is carried along ``flow_to_previous`` and OR-ed in.
    """
    chosen = (w_b * error_a >= w_a * error_b).to(error_a.dtype)
    if w_b == 0:
        chosen = torch.zeros_like(chosen)
    elif w_a == 0:
        chosen = torch.ones_like(chosen)
    if previous is not None:
        chosen = torch.maximum(chosen, warp(previous, flow_to_previous, mode="nearest"))
    return chosen


def error_weights(error_a: torch.Tensor, error_b: torch.Tensor, w_a: float, w_b: float,
                  sharpness: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel blend weights: the temporal weights times each side's inverse patch error.

    w'_A = w_A·E_B^k / (w_A·E_B^k + w_B·E_A^k) (k = ``sharpness``), and w'_B = 1 − w'_A; a pixel
    that one propagation matches far better takes mostly that one, where a fixed 50/50 mix at the
    middle of an interval averages a good patch with a wrong one. Errors [B, 1, H, W] ≥ 0 (the
    synthesis's descriptor SSD, offset by 1 so two perfect matches fall back to the temporal
    weights); returns two [B, 1, H, W] float32 tensors. k = 0 gives the temporal weights alone;
    k above about 4 can overflow float32 on large errors (the pack uses k = 0.5).
    """
    a = w_a * (error_b.clamp_min(0) + 1.0) ** sharpness
    b = w_b * (error_a.clamp_min(0) + 1.0) ** sharpness
    weight_a = a / (a + b).clamp_min(1e-12)
    return weight_a, 1.0 - weight_a


def _to_lab8(image: torch.Tensor) -> torch.Tensor:
    """RGB [0, 1] → Lab in OpenCV's 8-bit ranges (L 0..255, a and b offset by 128)."""
    lab = kornia.color.rgb_to_lab(image.clamp(0, 1))
    return torch.cat((lab[:, :1] * 255 / 100, lab[:, 1:] + 128), dim=1)


def _from_lab8(lab8: torch.Tensor) -> torch.Tensor:
    lab = torch.cat((lab8[:, :1] * 100 / 255, lab8[:, 1:] - 128), dim=1)
    return kornia.color.lab_to_rgb(lab).clamp(0, 1)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True, correction=0).clamp_min(1e-6)
    return (x - mean) / std


def histogram_blend_lab8(a: torch.Tensor, b: torch.Tensor, reference: torch.Tensor, w_a: float | torch.Tensor,
                         w_b: float | torch.Tensor) -> torch.Tensor:
    """Histogram-preserving blend of two Lab8 images with the global statistics of ``reference``.

    ``w_a``, ``w_b``: scalars or per-pixel [B, 1, H, W] weights (``error_weights``).
    """
    mixed = _standardise(w_a * _standardise(a) + w_b * _standardise(b))
    mean = reference.mean(dim=(-2, -1), keepdim=True)
    std = reference.std(dim=(-2, -1), keepdim=True, correction=0)
    return mixed * std + mean


def poisson_solve(target: torch.Tensor, grad_x: torch.Tensor, grad_y: torch.Tensor, weight: float) -> torch.Tensor:
    """Exact minimiser of w²‖∇x − g‖² + ‖x − t‖² with Neumann borders, per image channel.

    ∇ is the forward difference ``x[i] − x[i+1]`` (the reference's sign), last row/column zero.
    Normal equations (I + w²·L) x = t + w²·Dᵀg are diagonalised by the DCT-II; it is computed as an
    FFT of the half-sample-symmetric mirror of the right-hand side.

    Args:
        target, grad_x, grad_y: [..., H, W] (grad_x along the width).
    """
    height, width = target.shape[-2:]
    # Dᵀg for forward differences d[i] = x[i] − x[i+1]: (Dᵀg)[i] = g[i] − g[i−1].
    div_x = grad_x.clone()
    div_x[..., 1:] -= grad_x[..., :-1]
    div_y = grad_y.clone()
    div_y[..., 1:, :] -= grad_y[..., :-1, :]
    rhs = target + weight ** 2 * (div_x + div_y)
    mirrored = torch.cat((rhs, rhs.flip(-1)), dim=-1)
    mirrored = torch.cat((mirrored, mirrored.flip(-2)), dim=-2)
    spectrum = torch.fft.rfft2(mirrored)
    ky = torch.arange(2 * height, device=target.device, dtype=target.dtype).view(-1, 1)
    kx = torch.arange(width + 1, device=target.device, dtype=target.dtype).view(1, -1)
    laplacian = (2 - 2 * torch.cos(torch.pi * ky / height)) + (2 - 2 * torch.cos(torch.pi * kx / width))
    solution = torch.fft.irfft2(spectrum / (1 + weight ** 2 * laplacian), s=mirrored.shape[-2:])
    return solution[..., :height, :width]


def _forward_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[..., :-1] = x[..., :-1] - x[..., 1:]
    gy[..., :-1, :] = x[..., :-1, :] - x[..., 1:, :]
    return gx, gy


def poisson_fusion_lab8(blend: torch.Tensor, a: torch.Tensor, b: torch.Tensor, choose_b: torch.Tensor) -> torch.Tensor:
    """Colours of ``blend`` with the gradients of A or B (where ``choose_b``), per Lab8 channel.

    Solved in float64 where the device has it (CPU, CUDA), float32 elsewhere (MPS, XPU), which is
    still far below the 8-bit rounding of the result.
    """
    wide = precise_dtype(blend.device)
    ax, ay = _forward_gradients(a)
    bx, by = _forward_gradients(b)
    gx = torch.where(choose_b.bool(), bx, ax).clamp(-GRADIENT_CLIP, GRADIENT_CLIP)
    gy = torch.where(choose_b.bool(), by, ay).clamp(-GRADIENT_CLIP, GRADIENT_CLIP)
    channels = []
    for c, weight in enumerate(POISSON_WEIGHTS):
        mean = blend[:, c:c + 1].mean(dim=(-2, -1), keepdim=True)
        solved = poisson_solve((blend[:, c:c + 1] - mean).to(wide), gx[:, c:c + 1].to(wide), gy[:, c:c + 1].to(wide),
                               weight)
        channels.append(solved.to(blend.dtype) + mean)
    return torch.cat(channels, dim=1)


def blend_pair(a: torch.Tensor, b: torch.Tensor, choose_b: torch.Tensor, w_a: float | torch.Tensor,
               w_b: float | torch.Tensor,
               poisson: bool = False) -> torch.Tensor:
    """The blended frame from the two propagations and the selection mask ([B, 3, H, W] in [0, 1])."""
    lab_a, lab_b = _to_lab8(a), _to_lab8(b)
    selected = torch.where(choose_b.bool(), lab_b, lab_a)
    blended = histogram_blend_lab8(lab_a, lab_b, selected, w_a, w_b)
    if poisson:
        blended = poisson_fusion_lab8(blended, lab_a, lab_b, choose_b)
    return _from_lab8(blended.clamp(0, 255))
