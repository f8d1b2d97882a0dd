"""Flow geometry on synthetic data: warping convention, occlusions, mask shaping, conversion."""
from __future__ import annotations

import pytest
import torch

from harness.synthetic import constant_flow, shifted_clip, textured


def test_identity_flow_returns_the_image(pack):
    image = textured()
    for mode in ("bilinear", "nearest"):
        assert torch.allclose(pack.flow.warp.warp(image, constant_flow(0, 0), mode), image, atol=1e-5)


def test_warp_samples_at_p_plus_flow(pack):
    image = textured()
    shifted = pack.flow.warp.warp(image, constant_flow(3, 2), "nearest")
    # out(x, y) = image(x + 3, y + 2); reads past the border are zero.
    assert torch.allclose(shifted[..., :-2, :-3], image[..., 2:, 3:], atol=1e-6)
    assert shifted[..., -2:, :].abs().max() == 0 and shifted[..., :, -3:].abs().max() == 0
    bilinear = pack.flow.warp.warp(image, constant_flow(3, 2), "bilinear")
    assert torch.allclose(bilinear[..., :-2, :-3], image[..., 2:, 3:], atol=1e-5)


def test_flow_to_latent_scales_vectors(pack):
    latent_flow = pack.flow.warp.flow_to_latent(constant_flow(16, -8))
    assert latent_flow.shape == (1, 2, 6, 8)
    assert torch.allclose(latent_flow[:, 0], torch.full((1, 6, 8), 2.0))
    assert torch.allclose(latent_flow[:, 1], torch.full((1, 6, 8), -1.0))
    with pytest.raises(ValueError, match="not divisible by 8"):
        pack.flow.warp.flow_to_latent(constant_flow(1, 1, 50, 64))


def test_forward_backward_check_marks_what_leaves_the_frame(pack):
    forward, backward = constant_flow(3, 0), constant_flow(-3, 0)
    occluded_a, occluded_b = pack.flow.occlusion.forward_backward_occlusion(forward, backward)
    # Pixels of a in the 3 right-most columns move out of frame b; b's 3 left-most columns come from outside a.
    assert occluded_a[..., :, -3:].min() == 1 and occluded_a[..., :, :-3].max() == 0
    assert occluded_b[..., :, :3].min() == 1 and occluded_b[..., :, 3:].max() == 0


def test_inconsistent_flow_is_occluded(pack):
    forward, backward = constant_flow(2, 0), constant_flow(-2, 0)
    backward[..., 20:30, 20:30] = 5.0  # the backward flow disagrees inside this block
    occluded_a, _ = pack.flow.occlusion.forward_backward_occlusion(forward, backward)
    assert occluded_a[..., 20:30, 18:28].min() == 1
    assert occluded_a[..., :10, :40].max() == 0


def test_dilate_and_feather_grows_and_softens(pack):
    mask = torch.zeros(1, 1, 40, 40)
    mask[..., 20, 20] = 1
    blended = pack.flow.occlusion.dilate_and_feather(mask)
    assert blended[..., 20, 20] == 1
    assert (blended[..., 16:25, 16:25] > 0.2).all()   # grown by 4 px
    assert blended[..., 0, 0] < blended[..., 20, 24]
    assert 0 <= blended.min() and blended.max() <= 1


def test_latent_validity_needs_the_whole_block_valid(pack):
    invalid = torch.zeros(1, 1, 16, 16)
    invalid[..., 3, 12] = 0.5
    validity = pack.flow.occlusion.latent_validity(invalid)
    assert validity.shape == (1, 1, 2, 2)
    assert validity[0, 0].tolist() == [[1.0, 0.5], [1.0, 1.0]]


def test_colour_wheel_encodes_direction_and_occlusion(pack):
    flow = torch.cat([constant_flow(4, 0), constant_flow(-4, 0)])
    occluded = torch.zeros(2, 1, 48, 64)
    occluded[1, :, :10] = 1
    colors = pack.flow.visualize.flow_to_color(flow, occluded)
    assert colors.shape == (2, 3, 48, 64) and 0 <= colors.min() and colors.max() <= 1
    assert not torch.allclose(colors[0, :, 30, 30], colors[1, :, 30, 30], atol=0.1)
    assert colors[1, :, :10].max() == 0


def test_optical_flow_conversion_finds_direction_and_inverse(pack):
    clip, forward = shifted_clip()
    convert = pack.flow.conversion.video_flow_from_optical_flow
    as_unimatch = forward.permute(0, 2, 3, 1)           # OPTICAL_FLOW layout [N-1, H, W, 2]
    detected_forward = convert(as_unimatch, clip)
    detected_backward = convert(-as_unimatch, clip)      # Unimatch with backward_flow on
    interior = (..., slice(8, -8), slice(8, -8))
    for video_flow in (detected_forward, detected_backward):
        assert torch.allclose(video_flow.forward[interior], forward[interior], atol=1e-3)
        assert torch.allclose(video_flow.backward[interior], -forward[interior], atol=1e-3)
        assert video_flow.occluded_forward[:, :, :, -2:].min() == 1   # leaves the frame on the right
        assert video_flow.occluded_forward[interior].max() == 0
    assert torch.equal(convert(as_unimatch).forward, forward)   # no frames: Unimatch's default, forward


def test_estimated_video_flow_follows_a_translation(pack):
    clip, forward = shifted_clip(frames=3)
    video_flow = pack.flow.video_flow.estimate_video_flow(clip, pack.flow.dis.DisFlow("fine"), "dis_fine")
    assert video_flow.frame_count == 3 and video_flow.size == (48, 64)
    interior = (..., slice(12, -12), slice(12, -12))
    assert (video_flow.forward[interior] - forward[interior]).abs().mean() < 0.25
    assert (video_flow.backward[interior] + forward[interior]).abs().mean() < 0.25


def test_warp_video_moves_neighbours_into_place(pack):
    clip, forward = shifted_clip(frames=3)
    backward = -forward
    zeros = torch.zeros(2, 1, 48, 64)
    video_flow = pack.flow.video_flow.VideoFlow(forward, backward, zeros, zeros, "test")
    warped, occluded = pack.flow.video_flow.warp_video(clip, video_flow, "previous_to_next")
    assert torch.equal(warped[0], clip[0])
    interior = (..., slice(4, -4), slice(4, -4))
    assert torch.allclose(warped[1][interior], clip[1][interior], atol=1e-4)
    warped, _ = pack.flow.video_flow.warp_video(clip, video_flow, "next_to_previous")
    assert torch.equal(warped[-1], clip[-1])
    assert torch.allclose(warped[0][interior], clip[0][interior], atol=1e-4)


def test_flo_round_trip(pack, tmp_path):
    flow = torch.randn(2, 5, 7)
    pack.flow.io.write_flo(tmp_path / "f.flo", flow)
    assert torch.equal(pack.flow.io.read_flo(tmp_path / "f.flo"), flow)
