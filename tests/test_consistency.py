"""RerenderConsistency and flow/consistency.py: warp error and flicker against hand-computed values."""
from __future__ import annotations

import pytest
import torch

from harness.synthetic import shifted_clip, textured

HEIGHT, WIDTH, SHIFT = 32, 48, 2


@pytest.fixture(scope="module")
def consistency(pack):
    return pack.flow.consistency


def pattern(seed=0):
    """A texture in [0.2, 0.8], so adding ±0.1 never clips."""
    return 0.2 + 0.6 * textured(HEIGHT, WIDTH + SHIFT * 4, seed=seed)


def shifted_pair_clip(count=3, seed=0):
    """``count`` frames, each the previous one moved SHIFT px to the right; new content enters at the left."""
    big = pattern(seed)
    frames = [big[..., SHIFT * (count - 1 - i):SHIFT * (count - 1 - i) + WIDTH] for i in range(count)]
    return torch.cat(frames)


def known_flow(pack, count=3, occluded_backward=None):
    """The exact flow of ``shifted_pair_clip``: forward (+SHIFT, 0), backward (−SHIFT, 0); by default no
    occlusion marked (pixels whose flow leaves the frame must still be left out)."""
    pairs = count - 1
    forward = torch.zeros(pairs, 2, HEIGHT, WIDTH)
    forward[:, 0] = SHIFT
    backward = -forward
    zero = torch.zeros(pairs, 1, HEIGHT, WIDTH)
    return pack.flow.video_flow.VideoFlow(forward, backward, zero.clone(),
                                          zero.clone() if occluded_backward is None else occluded_backward, "known")


def test_a_pure_shift_along_its_flow_has_no_warp_error_and_no_flicker(pack, consistency):
    clip = shifted_pair_clip()
    assert torch.equal(clip[1, ..., SHIFT:], clip[0, ..., :-SHIFT])   # the clip really is the shift
    result = consistency.measure_consistency(clip, known_flow(pack))
    assert result.warp_error.tolist() == pytest.approx([0, 0], abs=1e-10)
    assert result.flicker.tolist() == pytest.approx([0, 0], abs=1e-7)
    # The first SHIFT columns of frame i+1 come from outside frame i: not counted, though not marked occluded.
    assert result.counted.tolist() == pytest.approx([(WIDTH - SHIFT) / WIDTH] * 2)


def test_a_constant_added_to_one_frame_gives_its_square_and_itself(pack, consistency):
    c = 0.1
    clip = shifted_pair_clip()
    brighter = clip.clone()
    brighter[2] += c
    result = consistency.measure_consistency(brighter, known_flow(pack))
    # Pair 0-1 untouched; pair 1-2: every counted pixel and channel is off by c.
    assert result.warp_error.tolist() == pytest.approx([0, c ** 2], abs=1e-7)
    assert result.mean_warp_error == pytest.approx(c ** 2 / 2, abs=1e-7)
    assert result.brightness_change.tolist() == pytest.approx([0, c], abs=1e-6)   # luma weights sum to 1
    assert result.flicker.tolist() == pytest.approx([0, c], abs=1e-6)
    # A source with the same brightening: the change is the scene's, not flicker (the warp error stays).
    relative = consistency.measure_consistency(brighter, known_flow(pack), source_frames=brighter)
    assert relative.flicker.tolist() == pytest.approx([0, 0], abs=1e-6)
    assert relative.warp_error.tolist() == pytest.approx([0, c ** 2], abs=1e-7)
    # An unchanged source: all of it is flicker.
    plain_source = consistency.measure_consistency(brighter, known_flow(pack), source_frames=clip)
    assert plain_source.flicker.tolist() == pytest.approx([0, c], abs=1e-6)
    # Darkening by c counts the same.
    darker = clip.clone()
    darker[2] -= c
    assert consistency.measure_consistency(darker, known_flow(pack)).flicker.tolist() == pytest.approx([0, c], abs=1e-6)


def test_occluded_pixels_are_left_out(pack, consistency):
    clip = shifted_pair_clip(count=2)
    broken = clip.clone()
    broken[1, :, 8:16, 20:28] = 1.0 - broken[1, :, 8:16, 20:28]   # an 8x8 block the flow cannot explain
    block = (clip[1, :, 8:16, 20:28] - broken[1, :, 8:16, 20:28]).pow(2).mean().item()
    visible = HEIGHT * (WIDTH - SHIFT)
    # Not marked occluded: the block's error over all counted pixels, by hand.
    unmarked = consistency.measure_consistency(broken, known_flow(pack, count=2))
    assert unmarked.warp_error.item() == pytest.approx(block * 64 / visible, rel=1e-5)
    # Marked occluded: left out, the rest is exact again.
    mask = torch.zeros(1, 1, HEIGHT, WIDTH)
    mask[..., 8:16, 20:28] = 1
    marked = consistency.measure_consistency(broken, known_flow(pack, count=2, occluded_backward=mask))
    assert marked.warp_error.item() == pytest.approx(0, abs=1e-10)
    assert marked.counted.item() == pytest.approx((visible - 64) / (HEIGHT * WIDTH))


def test_a_pair_with_nothing_visible_is_reported_not_averaged(pack, consistency):
    clip = shifted_pair_clip()
    mask = torch.zeros(2, 1, HEIGHT, WIDTH)
    mask[1] = 1
    result = consistency.measure_consistency(clip, known_flow(pack, occluded_backward=mask))
    assert result.warp_error[0].item() == pytest.approx(0, abs=1e-10) and torch.isnan(result.warp_error[1])
    assert result.mean_warp_error == pytest.approx(0, abs=1e-10)   # the mean of the pairs that have pixels
    table = consistency.format_table(result)
    assert "n/a" in table and "no pixel of the pair is visible" in table
    assert consistency.plot_consistency(result).shape == (480, 768, 3)


def test_the_table_and_the_plot(pack, consistency):
    clip = shifted_pair_clip()
    brighter = clip.clone()
    brighter[2] += 0.1
    result = consistency.measure_consistency(brighter, known_flow(pack))
    lines = consistency.format_table(result).splitlines()
    assert lines[0] == "Rerender consistency: 3 frames, 2 pairs; flow: known"
    assert lines[-3].split() == ["0-1", "0.000000", "95.8%", "0.000000"]
    assert lines[-2].split() == ["1-2", "0.010000", "95.8%", "0.100000"]
    assert lines[-1].split() == ["mean", "0.005000", "0.050000"]
    plot = consistency.plot_consistency(result)
    assert plot.dtype.name == "uint8" and plot.shape == (480, 768, 3)
    assert (plot != 255).any(axis=2).mean() > 0.01   # something is drawn
    steady = consistency.plot_consistency(consistency.measure_consistency(clip, known_flow(pack)))
    assert (steady != plot).any()


# -- the node, through the host ------------------------------------------------------------------------------

def image(frames):
    return frames.movedim(1, -1).contiguous()


def test_the_node_measures_with_a_given_flow(host, pack):
    clip = shifted_pair_clip()
    brighter = clip.clone()
    brighter[2] += 0.1
    warp_error, flicker, table, plot = host.call("RerenderConsistency", frames=image(brighter),
                                                 flow=known_flow(pack))
    assert warp_error == pytest.approx(0.005, abs=1e-7) and flicker == pytest.approx(0.05, abs=1e-6)
    assert isinstance(warp_error, float) and isinstance(flicker, float)
    assert table.splitlines()[0].endswith("flow: known") and "1-2" in table
    assert plot.shape == (1, 480, 768, 3) and plot.dtype == torch.float32 and 0 <= plot.min() and plot.max() <= 1


def test_the_node_estimates_the_flow_from_the_source_when_none_is_given(host):
    source, _ = shifted_clip(frames=3, dx=2, dy=1, height=64, width=64, cell=8)
    steady = host.call("RerenderConsistency", frames=image(source), source_frames=image(source))
    assert "flow: dis_medium, estimated from source_frames" in steady[2]
    assert steady[0] < 2e-4 and steady[1] < 1e-3   # DIS + bilinear warping of a smooth texture: near zero
    brighter = source.clone()
    brighter[1:] += 0.05   # frames 1 and 2 brighter: pair 0-1 jumps, pair 1-2 does not
    measured = host.call("RerenderConsistency", frames=image(brighter.clamp(0, 1)), source_frames=image(source))
    rows = [line.split() for line in measured[2].splitlines() if line.split()[0] in ("0-1", "1-2")]
    first, second = (float(row[1]) for row in rows), (float(row[3]) for row in rows)
    warp_01, warp_12 = first
    flicker_01, flicker_12 = second
    assert warp_01 == pytest.approx(0.05 ** 2, rel=0.2) and warp_12 < 2e-4
    assert flicker_01 == pytest.approx(0.05, abs=0.005) and flicker_12 < 1e-3
    # Without a source the flow comes from the frames themselves.
    (_, _, table, _) = host.call("RerenderConsistency", frames=image(source))
    assert "estimated from frames" in table


def test_the_node_takes_unimatch_optical_flow(host):
    clip = shifted_pair_clip()
    optical_flow = torch.zeros(2, HEIGHT, WIDTH, 2)
    optical_flow[..., 0] = SHIFT   # Unimatch's default: forward flow, frame i -> i+1
    warp_error, flicker, table, _ = host.call("RerenderConsistency", frames=image(clip), optical_flow=optical_flow)
    assert "flow: unimatch" in table
    assert warp_error < 1e-6 and flicker < 1e-4


@pytest.mark.parametrize("case, message", [
    ("one frame", "frames hold 1 frame\\(s\\); optical flow needs at least 2: connect the whole clip"),
    ("alpha", "frames have an alpha channel \\(RGBA\\): give RGB images"),
    ("source count", "source_frames hold 2 frames but frames hold 3: connect the clip the frames were made from"),
    ("source size", "source_frames are 40x32 but frames are 48x32: resize them to the same size first"),
    ("flow of another clip", "frames hold 3 frames but the flow was computed for 4: compute the flow on the same clip"),
    ("both flows", "Both flow and optical_flow are connected: connect only one of them"),
])
def test_bad_input_is_reported_with_the_fix(host, pack, case, message):
    clip = image(shifted_pair_clip())
    inputs = {
        "one frame": dict(frames=clip[:1]),
        "alpha": dict(frames=torch.cat([clip, torch.ones_like(clip[..., :1])], dim=-1)),
        "source count": dict(frames=clip, source_frames=clip[:2]),
        "source size": dict(frames=clip, source_frames=clip[:, :, :40]),
        "flow of another clip": dict(frames=clip, flow=known_flow(pack, count=4)),
        "both flows": dict(frames=clip, flow=known_flow(pack), optical_flow=torch.zeros(2, HEIGHT, WIDTH, 2)),
    }[case]
    with pytest.raises(ValueError, match=message):
        host.call("RerenderConsistency", **inputs)


def test_the_node_is_registered_with_its_sockets(host):
    node = host.nodes.NODE_CLASS_MAPPINGS["RerenderConsistency"]
    assert host.nodes.NODE_DISPLAY_NAME_MAPPINGS["RerenderConsistency"] == "Rerender: Consistency"
    assert node.CATEGORY == "Rerender"
    assert node.RETURN_TYPES == ("FLOAT", "FLOAT", "STRING", "IMAGE")
    inputs = node.INPUT_TYPES()
    assert list(inputs["required"]) == ["frames"]
    assert inputs["optional"]["flow"][0] == "RERENDER_FLOW" and inputs["optional"]["source_frames"][0] == "IMAGE"


def test_long_clips_are_measured_in_chunks_with_the_same_result(pack, consistency, monkeypatch):
    clip = shifted_pair_clip(count=5)
    brighter = clip.clone()
    brighter[3] += 0.1
    whole = consistency.measure_consistency(brighter, known_flow(pack, count=5), source_frames=clip)
    monkeypatch.setattr(consistency, "PAIRS_PER_CHUNK", 3)
    chunked = consistency.measure_consistency(brighter, known_flow(pack, count=5), source_frames=clip)
    assert chunked.warp_error.tolist() == pytest.approx(whole.warp_error.tolist(), abs=1e-12)
    assert chunked.flicker.tolist() == pytest.approx([0, 0, 0.1, 0.1], abs=1e-6)   # up at 2-3, down at 3-4
