"""RerenderResizeFrames: Load Video's size rule for frames that come from other nodes."""
from __future__ import annotations

import pytest
import torch


def resize(host, frames, short_side=512):
    (resized,) = host.call("RerenderResizeFrames", frames=frames, short_side=short_side)
    return resized


@pytest.mark.parametrize("size, short_side, expected", [
    ((960, 720), 512, (704, 512)),    # landscape, shrunk
    ((540, 680), 512, (512, 640)),    # portrait, shrunk
    ((780, 506), 512, (768, 512)),    # width shrinks, height grows: bicubic
    ((64, 48), 128, (192, 128)),      # grown
    ((64, 48), 0, (64, 48)),          # 0 keeps the size
])
def test_sizes_follow_load_videos_rule(host, pack, size, short_side, expected):
    width, height = size
    frames = torch.rand(2, height, width, 3)
    resized = resize(host, frames, short_side)
    assert pack.video.io.fit_size(width, height, short_side) == expected
    assert resized.shape == (2, expected[1], expected[0], 3)
    assert resized.dtype == torch.float32 and resized.min() >= 0.0 and resized.max() <= 1.0


def test_shrinking_averages_areas(host):
    checker = (torch.arange(128)[:, None] + torch.arange(128)[None, :]) % 2
    frames = checker.float()[None, :, :, None].expand(3, 128, 128, 3).contiguous()
    resized = resize(host, frames, 64)
    assert resized.shape == (3, 64, 64, 3)
    assert torch.allclose(resized, torch.full_like(resized, 0.5), atol=1e-6)   # each 2x2 block averaged


def test_growing_is_bicubic_and_stays_in_range(host):
    frames = torch.zeros(1, 48, 64, 3)
    frames[:, :, 32:] = 1.0                  # a hard edge: bicubic overshoots it unless clamped
    resized = resize(host, frames, 128)
    assert resized.shape == (1, 128, 192, 3)
    assert resized.min() == 0.0 and resized.max() == 1.0
    assert 0.0 < resized[0, 64, 96, 0] < 1.0    # the edge is interpolated, not copied nearest-neighbour
    smooth = torch.linspace(0, 1, 64).expand(1, 48, 64).unsqueeze(-1).expand(1, 48, 64, 3).contiguous()
    grown = resize(host, smooth, 128)[0, 64, :, 0]
    assert torch.all(grown[1:] >= grown[:-1] - 1e-6), "a ramp stays a ramp"


def test_kept_size_returns_the_same_batch(host):
    frames = torch.rand(4, 64, 128, 3)
    assert resize(host, frames, 64) is frames
    assert resize(host, frames, 0) is frames


def test_chunks_give_the_same_frames_and_channels_and_dtype_are_kept(host, pack):
    frames = torch.rand(7, 90, 120, 4)      # RGBA
    whole = resize(host, frames, 64)
    one_frame_at_a_time = pack.video.resize.resize_frames(frames, 64, chunk_bytes=1)
    assert whole.shape == (7, 64, 64, 4)
    assert torch.equal(whole, one_frame_at_a_time)
    half = resize(host, frames.half(), 64)
    assert half.dtype == torch.float16 and torch.allclose(half.float(), whole, atol=2e-3)


@pytest.mark.parametrize("given, message", [
    ({"samples": torch.zeros(1, 4, 8, 8)}, r"frames must be an IMAGE batch .*got dict \(a LATENT: decode it"),
    (torch.zeros(2, 64, 64), r"frames must be an IMAGE batch .*shape \(2, 64, 64\) \(a MASK\?"),
    (torch.zeros(2, 64, 64, 3, dtype=torch.uint8), r"floating-point values in 0..1 .*uint8"),
    (torch.zeros(0, 64, 64, 3), r"frames is empty"),
    ("frames.mp4", r"frames must be an IMAGE batch .*got str"),
])
def test_wrong_inputs_are_explained(host, given, message):
    with pytest.raises(ValueError, match=message):
        resize(host, given, 64)


def test_the_node_is_registered_with_tooltips(host):
    cls = host.nodes.NODE_CLASS_MAPPINGS["RerenderResizeFrames"]
    assert host.nodes.NODE_DISPLAY_NAME_MAPPINGS["RerenderResizeFrames"] == "Rerender: Resize Frames"
    assert cls.CATEGORY == "Rerender" and cls.RETURN_TYPES == ("IMAGE",)
    spec = cls.INPUT_TYPES()["required"]
    assert spec["frames"][0] == "IMAGE"
    assert spec["short_side"][1]["default"] == 512 and spec["short_side"][1]["step"] == 64
    assert all(options.get("tooltip") for _, options in spec.values())
