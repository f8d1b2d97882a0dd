"""The math of Rerender's hierarchical cross-frame constraints, as plain tensor functions.

Latents are in the sampler's space (VAE latents times the model's scale factor), [B, 4, h, w];
images are [B, 3, H, W] RGB in [0, 1]; masks are [B, 1, ·, ·] in [0, 1]. Sampling follows the
k-diffusion parametrisation x = x̂0 + σ·ε, in which every term of the reference's VP-DDIM
equations is divided by the same √ᾱ, so its formulas carry over with √(1−ᾱ) → σ.
Never imports ComfyUI.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..flow.occlusion import dilate_and_feather, latent_validity
from ..flow.warp import warp

ADAIN_EPS = 1e-5
# D(x_c) differing from the target by more than 0.25 in [-1, 1] units (0.125 in [0, 1]) marks a
# pixel where error compensation made things worse.
COMPENSATION_ERROR = 0.125


# The reference samples a fixed 20-step DDIM schedule over the 1000 training timesteps: its step i
# runs at t = 951 − 50·i (951, 901, …, 1), and a period (p0, p1) selects the steps with
# p0·20 ≤ i ≤ p1·20.
REFERENCE_STEPS = 20
TRAINING_TIMESTEPS = 1000
REFERENCE_FIRST_TIMESTEP = TRAINING_TIMESTEPS - TRAINING_TIMESTEPS // REFERENCE_STEPS + 1   # 951
_TOLERANCE = 1e-9


def schedule_position(timestep: float) -> float:
    """Where a diffusion timestep lies on the reference's full schedule, from 0 (noisiest) towards 1.

    position(t) = (951 − t) / 1000, and 0 for the noisier t > 951 that the reference's first step
    stands for: the reference's step i of 20 (t = 951 − 50·i) sits at exactly i / 20, so its period
    fractions select the same noise levels here, whatever the step count, scheduler or denoise.

    Args:
        timestep: the model's diffusion timestep of a step (``model_sampling.timestep(σ)``, 0…999 for SD1.5).
    """
    return max(0.0, (REFERENCE_FIRST_TIMESTEP - timestep) / TRAINING_TIMESTEPS)


def timestep_active(timestep: float, start: float, end: float) -> bool:
    """Whether a step at diffusion timestep ``timestep`` lies in the range [start, end].

    start and end are positions on the reference's full schedule (``schedule_position``): the
    step is active when 951 − 1000·end ≤ t ≤ 951 − 1000·start (no upper bound when start ≤ 0).
    A denoise below 1 never reaches the noisiest timesteps, so a range lying there is never
    active. start > end is an empty range.
    """
    position = schedule_position(timestep)
    return start - _TOLERANCE <= position <= end + _TOLERANCE


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) standard deviation over space.

    Args:
        x: [B, C, h, w] float of any precision, any device.

    Returns:
        (mean, std): two [B, C, 1, 1] float32 tensors on ``x``'s device (a half-precision sum over
        64×64 latent pixels loses the spread's low digits, which AdaIN then copies into every frame).
    """
    x = x.float()
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.var(dim=(-2, -1), keepdim=True, correction=0).sqrt()
    return mean, std


def adain(x0: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Colour-aware adaptive latent adjustment: give x̂0 the anchor's per-channel statistics.

    x̂0 ← (x̂0 − μ(x̂0)) / √(σ²(x̂0) + 1e-5) · σ_anchor + μ_anchor (instance norm, biased variance),
    computed in float32.

    Args:
        x0: [B, C, h, w] predicted clean latent, any float dtype.
        mean, std: [B or 1, C, 1, 1] the anchor's x̂0 statistics at the same step, on ``x0``'s device.

    Returns:
        [B, C, h, w] in ``x0``'s dtype, on its device.
    """
    x = x0.float()
    own_mean = x.mean(dim=(-2, -1), keepdim=True)
    own_var = x.var(dim=(-2, -1), keepdim=True, correction=0)
    adjusted = (x - own_mean) / torch.sqrt(own_var + ADAIN_EPS) * std.float() + mean.float()
    return adjusted.to(x0.dtype)


def shape_fusion(x0: torch.Tensor, anchor_x0: torch.Tensor, latent_flow: torch.Tensor,
                 validity: torch.Tensor) -> torch.Tensor:
    """Shape-aware latent fusion: paste the anchor's x̂0, warped to this frame, where it is valid.

    x̂0 ← m·warp_nearest(x̂0_anchor, flow) + (1 − m)·x̂0

    Args:
        x0: [B, C, h, w] this frame's x̂0.
        anchor_x0: [B, C, h, w] the anchor's x̂0 at the same step.
        latent_flow: [B, 2, h, w] flow from this frame to the anchor, in latent pixels.
        validity: [B, 1, h, w] soft mask, 1 where the anchor shows this frame's content.
    """
    return validity * warp(anchor_x0, latent_flow, mode="nearest") + (1 - validity) * x0


def blend_masks(occluded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From a hard occlusion mask [B, 1, H, W]: the soft pixel blend mask (dilated 4 px and
    feathered, 1 = take the fresh render) and the latent validity [B, 1, H/8, W/8] (1 = use the
    warped reference; a latent pixel is valid only where its whole 8×8 block is)."""
    blend = dilate_and_feather(occluded)
    return blend, latent_validity(blend)


def composite_references(render: torch.Tensor, warped_previous: torch.Tensor, previous_blend: torch.Tensor,
                         warped_anchor: torch.Tensor, anchor_blend: torch.Tensor) -> torch.Tensor:
    """Pixel-aware composite: the anchor wins where valid, then the previous key frame, then the
    fresh render: C = (1−B_a)·W_a + B_a·((1−B_p)·W_p + B_p·render). All [B, 3, H, W] / [B, 1, H, W]."""
    over_render = (1 - previous_blend) * warped_previous + previous_blend * render
    return (1 - anchor_blend) * warped_anchor + anchor_blend * over_render


def compensation_mask(decoded_compensated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Where fidelity compensation hurt: [B, 1, H/8, W/8], 1 = do not compensate.

    A pixel is flagged where the decoded compensated latent differs from the target by more than
    0.25 (in [−1, 1] units, channel mean); the flags are down-sampled to latent size (any flag
    counts) and grown by one latent pixel.
    """
    flagged = ((decoded_compensated - target).abs().mean(dim=1, keepdim=True) > COMPENSATION_ERROR).float()
    small = F.interpolate(flagged, scale_factor=1 / 8, mode="bilinear", align_corners=False) > 0
    return F.max_pool2d(small.float(), kernel_size=3, stride=1, padding=1)


def fidelity_target(encoded: torch.Tensor, re_encoded: torch.Tensor, no_compensation: torch.Tensor) -> torch.Tensor:
    """Fidelity-oriented latent: x_r + (1 − M)·(x_r − x_rr), compensating the VAE's round-trip
    loss except where that compensation produced artefacts (M = 1)."""
    return encoded + (1 - no_compensation) * (encoded - re_encoded)


def flat_regions(mask: torch.Tensor) -> torch.Tensor:
    """1 where a [B, 1, h, w] mask has no 3×3 Prewitt gradient (replicate border), else 0."""
    kernel_x = torch.tensor([[-1.0, 0.0, 1.0]] * 3, dtype=mask.dtype, device=mask.device)
    kernels = torch.stack((kernel_x, kernel_x.t())).unsqueeze(1)
    gradients = F.conv2d(F.pad(mask, (1, 1, 1, 1), mode="replicate"), kernels)
    return (gradients.abs().sum(dim=1, keepdim=True) < 1e-6).to(mask.dtype)


def pixel_fusion_weights(validity: torch.Tensor, strength: float, detail: float,
                         smooth_boundary: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-latent-pixel weights of the pixel-aware blend.

    w = validity·strength is the weight of the fused target; r = max(1 − w, √(1 − w²)·detail)
    the weight kept of the model's own noise direction (≈ variance preserving, damped by
    ``detail``, the reference's inner strength). With ``smooth_boundary`` r becomes linear,
    1 − w, wherever the validity mask is not flat, which avoids seams.

    Returns:
        (w, r): two [B, 1, h, w] tensors.
    """
    w = validity * strength
    r = torch.maximum(1 - w, torch.sqrt(1 - w ** 2) * detail)
    if smooth_boundary:
        flat = flat_regions(validity)
        r = (1 - w) * (1 - flat) + r * flat
    return w, r


def pixel_fusion_blend(x: torch.Tensor, direction: torch.Tensor, target: torch.Tensor, noise: torch.Tensor,
                       sigma: float, w: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Blend the fused target into x_t at the start of a step.

    x_t ← w·(x_trg + σ·n) + (1 − w)·(x_t − dir) + r·dir, where dir = σ·ε is the previous step's
    noise direction (so x_t − dir is that step's x̂0) and n is fresh noise.
    """
    return w * (target + sigma * noise) + (1 - w) * (x - direction) + r * direction


def cross_frame_context(anchor: torch.Tensor, previous: torch.Tensor, batch: int) -> torch.Tensor:
    """Keys/values source of cross-frame attention: the anchor's and the previous key frame's
    self-attention inputs side by side along the tokens, [batch, 2·HW, C]."""
    return torch.cat((anchor, previous), dim=1).expand(batch, -1, -1)
