"""Key-to-key flow composed from consecutive flows (flow/compose.py), on analytic flows."""
from __future__ import annotations

import math

import pytest
import torch

from harness.synthetic import constant_flow

H, W = 48, 64


def pixels():
    """Pixel coordinates x, y [1, 1, H, W] in float64, built here rather than with the pack's
    ``pixel_grid`` so that the ground truth does not share the code under test."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    return xs[None, None], ys[None, None]


def rotation(angle_degrees: float, centre: tuple[float, float]):
    """The map p ↦ R(angle)(p − centre) + centre, on coordinate tensors."""
    cos, sin = math.cos(math.radians(angle_degrees)), math.sin(math.radians(angle_degrees))

    def move(x, y):
        dx, dy = x - centre[0], y - centre[1]
        return centre[0] + cos * dx - sin * dy, centre[1] + sin * dx + cos * dy
    return move


def ripple(amplitude: float, wavelength: float, phase: float):
    """A smooth non-linear displacement field, as a map p ↦ p + d(p)."""
    k = 2 * math.pi / wavelength

    def move(x, y):
        return (x + amplitude * torch.sin(k * y + phase),
                y + amplitude * torch.cos(k * x - 0.7 * k * y + phase))
    return move


def flow_of(move) -> torch.Tensor:
    """The flow [1, 2, H, W] (float32) of a map on the pixel grid: move(p) − p."""
    x, y = pixels()
    mx, my = move(x, y)
    return torch.cat((mx - x, my - y), dim=1).float()


def chained(*moves):
    def move(x, y):
        for step in moves:
            x, y = step(x, y)
        return x, y
    return move


def leaves_frame(*partial_sums) -> torch.Tensor:
    """1 where a pixel moved by any of the constant displacements (dx, dy) lies outside the frame."""
    x, y = pixels()
    outside = torch.zeros(1, 1, H, W, dtype=torch.bool)
    for dx, dy in partial_sums:
        outside |= (x + dx < 0) | (x + dx > W - 1) | (y + dy < 0) | (y + dy > H - 1)
    return outside.float()


def video_flow_of(pack, forward, backward, occluded_forward=None, occluded_backward=None):
    zeros = torch.zeros(forward.shape[0], 1, H, W)
    return pack.flow.video_flow.VideoFlow(
        forward, backward,
        zeros if occluded_forward is None else occluded_forward,
        zeros if occluded_backward is None else occluded_backward, "test")


def test_constant_flows_sum_and_pixels_that_ever_leave_stay_lost(pack):
    steps = torch.cat([constant_flow(2, 1), constant_flow(-0.5, 3), constant_flow(1.25, -2)])
    flow, occluded = pack.flow.compose.compose_flows(steps)
    assert flow.shape == (1, 2, H, W) and flow.dtype == torch.float32
    # (2.75, 2) everywhere the chain stays in the frame (outside, bilinear sampling reads zeros).
    expected_lost = leaves_frame((2, 1), (1.5, 4), (2.75, 2))
    visible = expected_lost[0, 0] == 0
    assert torch.allclose(flow[0, 0][visible], torch.tensor(2.75), atol=1e-5)
    assert torch.allclose(flow[0, 1][visible], torch.tensor(2.0), atol=1e-5)
    # Rows H−4 and H−3 go below the frame after the second step and come back at the third: still lost.
    assert expected_lost[0, 0, H - 4, 10] == 1 and leaves_frame((2.75, 2))[0, 0, H - 4, 10] == 0
    assert torch.equal(occluded, expected_lost)


def test_rotations_about_different_centres_compose_to_the_chained_rotation(pack):
    # Bilinear sampling reproduces an affine field exactly, so only the chaining is under test;
    # rotations about different centres do not commute, so the order of the steps matters.
    moves = [rotation(12, (10, 40)), rotation(-15, (55, 8)), rotation(10, (32, 24))]
    steps = torch.cat([flow_of(move) for move in moves])
    flow, occluded = pack.flow.compose.compose_flows(steps)
    expected = flow_of(chained(*moves))
    visible = occluded[0, 0] == 0
    assert visible.float().mean() > 0.5
    assert (flow - expected).abs().amax(dim=1)[0][visible].max() < 1e-3
    wrong_order = flow_of(chained(*reversed(moves)))
    assert (wrong_order - expected).abs().amax(dim=1)[0][visible].max() > 0.5   # the check can fail


def test_smooth_non_linear_flows_compose_within_interpolation_error(pack):
    moves = [ripple(3.0, 40, 0.0), ripple(2.5, 36, 1.3), ripple(3.5, 44, 2.1), ripple(2.0, 30, 0.4)]
    steps = torch.cat([flow_of(move) for move in moves])
    flow, occluded = pack.flow.compose.compose_flows(steps)
    expected = flow_of(chained(*moves))
    visible = occluded[0, 0] == 0
    error = (flow - expected).abs().amax(dim=1)[0][visible]
    assert visible.float().mean() > 0.7
    assert error.max() < 0.1, f"composed flow off by up to {error.max():.3f} px"
    # Summing the steps without following the pixels is far off: the test tells the two apart.
    assert (steps.sum(0, keepdim=True) - expected).abs().amax(dim=1)[0][visible].max() > 1.0


def test_a_steps_occlusions_are_carried_to_where_the_pixel_started(pack):
    steps = torch.cat([constant_flow(3, 0), constant_flow(3, 0)])
    occluded = torch.zeros(2, 1, H, W)
    occluded[0, :, 5:10, 5:10] = 1      # frame 0's own pixels hidden in frame 1
    occluded[1, :, 20:30, 20:30] = 1    # frame 1's pixels hidden in frame 2: frame 0's x = 17..26
    _, lost = pack.flow.compose.compose_flows(steps, occluded)
    expected = leaves_frame((3, 0), (6, 0))
    expected[..., 5:10, 5:10] = 1
    expected[..., 20:30, 17:27] = 1
    assert torch.equal(lost, expected)


def test_key_to_key_forward_uses_the_forward_flows_and_masks(pack):
    forward = torch.cat([constant_flow(1, 0), constant_flow(0, 2), constant_flow(1.5, 1)])
    occluded_forward = torch.zeros(3, 1, H, W)
    occluded_forward[2, :, 10:20, 30:40] = 1   # frame 2 coordinates; frame 1 reaches them from (x − 0, y − 2)
    video_flow = video_flow_of(pack, forward, -forward, occluded_forward)
    flow, occluded = pack.flow.compose.key_to_key_flow(video_flow, 1, 3)
    expected_lost = leaves_frame((0, 2), (1.5, 3))
    expected_lost[..., 8:18, 30:40] = 1
    assert torch.equal(occluded, expected_lost)
    visible = occluded[0, 0] == 0
    assert torch.allclose(flow[0, 0][visible], torch.tensor(1.5))
    assert torch.allclose(flow[0, 1][visible], torch.tensor(3.0))


def test_key_to_key_backward_follows_the_backward_flows_from_the_later_frame(pack):
    moves = [rotation(4, (20, 30)), rotation(-6, (40, 10)), rotation(5, (32, 24))]
    inverses = [rotation(-4, (20, 30)), rotation(6, (40, 10)), rotation(-5, (32, 24))]
    forward = torch.cat([flow_of(move) for move in moves])
    backward = torch.cat([flow_of(inverse) for inverse in inverses])   # backward[k]: frame k+1 → k
    occluded_backward = torch.zeros(3, 1, H, W)
    occluded_backward[2, :, 5:15, 5:15] = 1   # frame 3's own pixels: the first step from frame 3
    video_flow = video_flow_of(pack, forward, backward, occluded_backward=occluded_backward)
    flow, occluded = pack.flow.compose.key_to_key_flow(video_flow, 3, 0)
    expected = flow_of(chained(*reversed(inverses)))   # frame 3 → 2 → 1 → 0
    visible = occluded[0, 0] == 0
    assert (flow - expected).abs().amax(dim=1)[0][visible].max() < 1e-3
    assert occluded[..., 5:15, 5:15].min() == 1
    # And 0 → 3 forward is the inverse map: going there and back returns every visible pixel.
    there, lost_there = pack.flow.compose.key_to_key_flow(video_flow, 0, 3)
    back = pack.flow.warp.warp(flow, there)
    round_trip = (lost_there[0, 0] == 0) & (pack.flow.warp.warp(occluded, there)[0, 0] == 0)
    assert (there + back).abs().amax(dim=1)[0][round_trip].max() < 1e-3


def test_a_frame_to_itself_is_the_zero_flow(pack):
    forward = torch.cat([constant_flow(2, 1), constant_flow(1, 1)])
    video_flow = video_flow_of(pack, forward, -forward, torch.ones(2, 1, H, W), torch.ones(2, 1, H, W))
    flow, occluded = pack.flow.compose.key_to_key_flow(video_flow, 1, 1)
    assert flow.shape == (1, 2, H, W) and occluded.shape == (1, 1, H, W)
    assert flow.abs().max() == 0 and occluded.max() == 0


@pytest.mark.parametrize("source, target", [(0, 2), (2, 0), (1, 1)])
def test_key_to_key_flow_is_composed_on_the_device_asked_for(pack, source, target):
    # The meta device runs no arithmetic: every step the chain needs must have been moved there.
    forward = torch.cat([constant_flow(2, 1), constant_flow(1, 1)])
    video_flow = video_flow_of(pack, forward, -forward)
    flow, occluded = pack.flow.compose.key_to_key_flow(video_flow, source, target, device="meta")
    assert flow.device.type == "meta" and occluded.device.type == "meta"
    assert flow.shape == (1, 2, H, W) and occluded.shape == (1, 1, H, W)


def test_bad_input_is_named(pack):
    compose = pack.flow.compose
    forward = torch.cat([constant_flow(2, 1), constant_flow(1, 1)])
    video_flow = video_flow_of(pack, forward, -forward)
    with pytest.raises(ValueError, match=r"target frame 3 is outside the clip.*0 to 2"):
        compose.key_to_key_flow(video_flow, 0, 3)
    with pytest.raises(ValueError, match=r"source frame -1 is outside the clip"):
        compose.key_to_key_flow(video_flow, -1, 2)
    with pytest.raises(ValueError, match=r"source must be a frame index \(int\); got float"):
        compose.key_to_key_flow(video_flow, 1.0, 2)
    with pytest.raises(ValueError, match=r"steps must be flows \[steps, 2, height, width\]; got \(2, 48, 64\)"):
        compose.compose_flows(forward[0])
    with pytest.raises(ValueError, match="steps is empty"):
        compose.compose_flows(forward[:0])
    with pytest.raises(ValueError, match=r"occluded must be masks \(2, 1, 48, 64\).*got \(2, 1, 24, 32\)"):
        compose.compose_flows(forward, torch.zeros(2, 1, 24, 32))
