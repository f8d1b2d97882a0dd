"""A texture that stays on the screen while the scene moves: estimated from the key frames.

Some styles carry a texture fixed to the screen rather than to the scene: paper grain, canvas,
a vignette, a print pattern, or the screen-locked detail a diffusion model repeats from key to key.
Patch synthesis moves everything with the content, so such a texture slides with the motion and
is smeared where the content it rode on is disoccluded. Separating it first lets the chains carry
only the part of the style that moves: each key is divided by the estimated texture, propagated,
and the texture multiplied back at its place on the screen.

The estimate, per pixel, from all key frames (a multiplicative texture T, one plane for all colour
channels): in each key the log-luminance's detail (the log image minus its Gaussian blur); their
mean over the keys, each key weighted by the inverse of its local detail energy (a key with an
edge there says less about a faint texture than a key that is flat there); shrunk by how well
consecutive keys' details agree in a window around the pixel (their local correlation, clipped to
[0, 1], to a power), so content that moves between keys, which does not correlate at a fixed
place, leaves T at 1. Where the scene does not move, what the estimate takes for texture is
content that every key shows at the same place; dividing it out and multiplying it back returns
it unchanged there, so a mistaken estimate costs only where the content moves.

``bench/propagation_settings.py '{"screen_texture": 0}'`` compares with and without.
"""
from __future__ import annotations

import kornia
import torch

# Offset inside the logarithm, in [0, 1] units: keeps black outlines from dominating the detail.
LOG_OFFSET = 0.3
DETAIL_SIGMA = 12.0       # px: detail = log image − this blur of it
ENERGY_SIGMA = 4.0        # px: the local detail energy a key's weight comes from
ENERGY_FLOOR = 0.02
AGREEMENT_SIGMA = 16.0    # px: the window consecutive keys' details are correlated in
AGREEMENT_POWER = 1.5
LARGEST_LOG = 0.4         # |log T| ≤ 0.4: T in [0.67, 1.49]


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    size = int(2 * round(3 * sigma) + 1)
    # replicate, not reflect: reflection needs the image larger than the kernel's half-width
    return kornia.filters.gaussian_blur2d(image, (size, size), (sigma, sigma), border_type="replicate")


def _detail(style: torch.Tensor) -> torch.Tensor:
    log_luminance = torch.log(style.float().clamp(0, 1) + LOG_OFFSET).mean(1, keepdim=True)
    return log_luminance - _blur(log_luminance, DETAIL_SIGMA)


def estimate_screen_texture(styles: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """The screen-fixed multiplicative texture shared by the key frames.

    Args:
        styles: [K, 3, H, W] the rendered key frames in time order, RGB in [0, 1], any float dtype
            and device. K = 1 has nothing to compare with: the texture is 1 everywhere.
        strength: the estimate's log scaled by this (0: no texture, 1: as estimated).

    Returns:
        [1, 1, H, W] float32 on ``styles``' device, in [exp(−0.4·strength), exp(0.4·strength)]
        (1: no texture). Keys are read one at a time, so memory does not grow with K.
    """
    if styles.ndim != 4 or styles.shape[1] != 3:
        raise ValueError(f"styles must be [K, 3, H, W] (got {tuple(styles.shape)}).")
    if not 0 <= strength <= 1:
        raise ValueError(f"screen texture strength must be in [0, 1] (got {strength}).")
    plane = styles.shape[-2:]
    if styles.shape[0] < 2 or strength == 0:
        return torch.ones(1, 1, *plane, device=styles.device)
    weighted_sum = weight_sum = agreement = 0
    previous = None
    for index in range(styles.shape[0]):
        detail = _detail(styles[index:index + 1])
        weight = 1 / (_blur(detail * detail, ENERGY_SIGMA) + ENERGY_FLOOR)
        weighted_sum = weighted_sum + weight * detail
        weight_sum = weight_sum + weight
        if previous is not None:
            covariance = _blur(previous * detail, AGREEMENT_SIGMA)
            energies = _blur(previous * previous, AGREEMENT_SIGMA) * _blur(detail * detail, AGREEMENT_SIGMA)
            agreement = agreement + covariance / energies.sqrt().clamp_min(1e-8)
        previous = detail
    agreement = (agreement / (styles.shape[0] - 1)).clamp(0, 1) ** AGREEMENT_POWER
    log_texture = (weighted_sum / weight_sum * agreement).clamp(-LARGEST_LOG, LARGEST_LOG)
    return torch.exp(strength * log_texture)
