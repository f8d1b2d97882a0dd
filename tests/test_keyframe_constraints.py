"""The constraint math as plain functions (keyframes/constraints.py)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def c(pack):
    return pack.keyframes.constraints


REFERENCE_TIMESTEPS = [951 - 50 * i for i in range(20)]   # the reference's fixed 20-step DDIM schedule


def steps_of(c, start, end, timesteps=REFERENCE_TIMESTEPS):
    return [i for i, t in enumerate(timesteps) if c.timestep_active(t, start, end)]


def test_default_ranges_select_the_reference_steps(c):
    # On the reference's own schedule the ranges pick exactly its steps (its periods, §1.4 of the spec).
    assert steps_of(c, 0.0, 1.0) == list(range(20))          # cross-frame attention
    assert steps_of(c, 0.0, 0.1) == [0, 1, 2]                 # shape-aware fusion: t 951, 901, 851
    assert steps_of(c, 0.55, 0.75) == [11, 12, 13, 14, 15]    # pixel-aware fusion (reference 0.5-0.8, strict)
    assert steps_of(c, 0.8, 1.0) == [16, 17, 18, 19]          # AdaIN
    assert steps_of(c, 1.0, 0.0) == []                        # switched off


def test_ranges_are_positions_on_the_full_schedule_not_fractions_of_the_steps_run(c):
    assert c.schedule_position(951) == 0 and c.schedule_position(999) == 0   # noisier than step 0 counts as 0
    assert c.schedule_position(401) == pytest.approx(0.55) and c.schedule_position(1) == pytest.approx(0.95)
    # The host's 20 ddim_uniform steps at denoise 0.75 run t = 723, 685, ..., 39, 1 (spacing 38): the
    # ranges follow the timesteps, not the step numbers (which would give t 305...153 for pixel fusion).
    denoise_075 = [723 - 38 * i for i in range(20)]
    assert [denoise_075[i] for i in steps_of(c, 0.55, 0.75, denoise_075)] == [381, 343, 305, 267, 229]
    assert [denoise_075[i] for i in steps_of(c, 0.8, 1.0, denoise_075)] == [115, 77, 39, 1]
    assert steps_of(c, 0.0, 0.1, denoise_075) == []           # shape fusion's range was skipped
    assert steps_of(c, 0.0, 1.0, denoise_075) == list(range(20))
    # "normal" at denoise 1 starts at t = 999, above the reference's first step: still position 0.
    assert c.timestep_active(999, 0.0, 0.1) and not c.timestep_active(999, 0.05, 0.1)


def test_adain_gives_the_anchor_statistics(c):
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 4, 16, 16, generator=generator) * 3 + 1
    anchor = torch.randn(1, 4, 16, 16, generator=generator) * 0.5 - 2
    mean, std = c.channel_stats(anchor)
    adjusted_mean, adjusted_std = c.channel_stats(c.adain(x0, mean, std))
    assert torch.allclose(adjusted_mean, mean, atol=1e-4)
    assert torch.allclose(adjusted_std, std, atol=1e-4)


def test_shape_fusion_pastes_the_warped_anchor_where_valid(c):
    generator = torch.Generator().manual_seed(1)
    x0, anchor = torch.randn(2, 1, 4, 8, 8, generator=generator)
    identity = torch.zeros(1, 2, 8, 8)
    assert torch.equal(c.shape_fusion(x0, anchor, identity, torch.ones(1, 1, 8, 8)), anchor)
    assert torch.equal(c.shape_fusion(x0, anchor, identity, torch.zeros(1, 1, 8, 8)), x0)
    half = torch.zeros(1, 1, 8, 8)
    half[..., :4] = 1
    fused = c.shape_fusion(x0, anchor, identity, half)
    assert torch.equal(fused[..., :4], anchor[..., :4]) and torch.equal(fused[..., 4:], x0[..., 4:])
    shifted = torch.zeros(1, 2, 8, 8)
    shifted[:, 0] = 1   # this frame's pixel x shows the anchor's pixel x + 1
    assert torch.equal(c.shape_fusion(x0, anchor, shifted, torch.ones(1, 1, 8, 8))[..., :-1], anchor[..., 1:])


def test_flat_regions_and_pixel_fusion_weights(c):
    validity = torch.ones(1, 1, 8, 8)
    validity[..., :, :3] = 0
    flat = c.flat_regions(validity)
    assert flat[..., :, 0].min() == 1 and flat[..., :, 6:].min() == 1
    assert flat[..., :, 2:4].max() == 0   # beside the edge of the mask
    w, r = c.pixel_fusion_weights(validity, strength=0.5, detail=0.9, smooth_boundary=True)
    assert torch.allclose(w[..., 0, 7], torch.tensor(0.5))
    assert torch.allclose(r[..., 0, 7], torch.tensor(max(0.5, (1 - 0.25) ** 0.5 * 0.9)))   # 0.779 inside
    assert torch.allclose(r[..., 0, 3], torch.tensor(0.5))   # linear at the boundary
    assert r[0, 0, 0, 0] == 1.0      # w = 0: the model's own direction kept
    _, r_sharp = c.pixel_fusion_weights(validity, strength=0.5, detail=0.9, smooth_boundary=False)
    assert torch.allclose(r_sharp[..., 0, 3], torch.tensor(0.7794), atol=1e-4)


def test_pixel_fusion_blend(c):
    generator = torch.Generator().manual_seed(2)
    x, direction, target, noise = torch.randn(4, 1, 4, 8, 8, generator=generator)
    zero, one = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    assert torch.allclose(c.pixel_fusion_blend(x, direction, target, noise, 0.7, zero, one), x)
    assert torch.allclose(c.pixel_fusion_blend(x, direction, target, noise, 0.7, one, zero), target + 0.7 * noise)


def test_composite_prefers_anchor_then_previous_then_render(c):
    render, previous, anchor = (torch.full((1, 3, 8, 8), v) for v in (0.1, 0.5, 0.9))
    valid, invalid = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    assert torch.equal(c.composite_references(render, previous, valid, anchor, valid), anchor)
    assert torch.equal(c.composite_references(render, previous, valid, anchor, invalid), previous)
    assert torch.equal(c.composite_references(render, previous, invalid, anchor, invalid), render)


def test_fidelity_compensation_is_skipped_where_it_hurts(c):
    target = torch.rand(1, 3, 16, 16)
    decoded = target.clone()
    decoded[..., 8:, 8:] += 0.5   # compensation produced an artefact in the bottom-right block
    mask = c.compensation_mask(decoded, target)
    assert mask.shape == (1, 1, 2, 2)
    assert mask[0, 0, 1, 1] == 1 and mask[0, 0, 0, 0] == 1   # grown by one latent pixel
    encoded, re_encoded = torch.ones(1, 4, 2, 2), torch.full((1, 4, 2, 2), 0.75)
    assert torch.allclose(c.fidelity_target(encoded, re_encoded, torch.zeros(1, 1, 2, 2)), torch.full((1, 4, 2, 2), 1.25))
    assert torch.equal(c.fidelity_target(encoded, re_encoded, torch.ones(1, 1, 2, 2)), encoded)


def test_cross_frame_attention_on_itself_is_self_attention(host, c):
    from harness.models import tiny_sd15

    block = tiny_sd15(0).model.diffusion_model.output_blocks[6][1].transformer_blocks[0]
    hidden = torch.randn(2, 64, block.attn1.to_q.in_features, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        own = block.attn1(hidden)
        context = c.cross_frame_context(hidden[:1], hidden[:1], 1)
        crossed = block.attn1(hidden[:1], context=context, value=context)
    assert torch.allclose(crossed, own[:1], atol=1e-4)
