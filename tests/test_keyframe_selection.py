"""RerenderSelectKeyframes: the plain selection, the node in-process, and through the server."""
from __future__ import annotations

import pytest
import torch


def _empty_image_prompt(frames: int, interval: int, first_index: int = 0, include_last_frame: bool = True) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": frames, "color": 0}},
        "2": {"class_type": "RerenderSelectKeyframes",
              "inputs": {"frames": ["1", 0], "method": "uniform", "interval": interval, "first_index": first_index,
                         "include_last_frame": include_last_frame, "min_interval": 5, "max_interval": 20}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


@pytest.mark.parametrize("frames, interval, first, last, expected", [
    (40, 10, 0, True, (0, 10, 20, 30, 39)),
    (40, 10, 0, False, (0, 10, 20, 30)),
    (41, 10, 0, True, (0, 10, 20, 30, 40)),
    (40, 10, 5, True, (5, 15, 25, 35, 39)),
    (2, 1, 0, True, (0, 1)),
    (1, 1, 0, True, (0,)),
])
def test_uniform_keyframes(pack, frames, interval, first, last, expected):
    keys = pack.video.keyframe_selection.uniform_keyframes(frames, interval, first, last)
    assert keys.indices == expected
    assert keys.frame_count == frames


@pytest.mark.parametrize("frames, interval, first, message", [
    (40, 40, 0, "interval 40 is longer than the clip"),
    (40, 0, 0, "interval must be at least 1"),
    (40, 10, 40, "first_index 40 is outside"),
    (0, 10, 0, "empty"),
])
def test_uniform_keyframes_rejects_bad_input(pack, frames, interval, first, message):
    with pytest.raises(ValueError, match=message):
        pack.video.keyframe_selection.uniform_keyframes(frames, interval, first)


@pytest.mark.parametrize("indices, message", [
    ((0, 5, 5), "twice"), ((0, 7, 5), "not sorted"), ((0, 12), "outside"), ((), "No key frames"),
])
def test_keyframe_indices_must_be_sorted_distinct_in_range(pack, indices, message):
    with pytest.raises(ValueError, match=message):
        pack.video.keyframe_selection.KeyframeIndices(indices, 12)


def test_node_returns_the_selected_frames(host, pack):
    frames = torch.rand(12, 16, 24, 3)
    key_frames, keys, text = host.call("RerenderSelectKeyframes", frames=frames, method="uniform", interval=5,
                                       first_index=1, include_last_frame=True, min_interval=5, max_interval=20)
    assert keys.indices == (1, 6, 11)
    assert text == "1,6,11"
    assert torch.equal(key_frames, frames[[1, 6, 11]])
    assert isinstance(keys, pack.video.keyframe_selection.KeyframeIndices)


def test_node_runs_in_a_prompt_in_process(host):
    outputs = host.execute(_empty_image_prompt(frames=12, interval=5))
    assert outputs["2"]["text"] == ["0,5,10,11"]
    assert len(outputs["3"]["images"]) == 4


@pytest.mark.server
def test_node_runs_through_the_server(server):
    spec = server.object_info("RerenderSelectKeyframes")["RerenderSelectKeyframes"]
    assert list(spec["input"]["required"]) == ["frames", "method", "interval", "first_index", "include_last_frame",
                                              "min_interval", "max_interval"]
    assert spec["output"] == ["IMAGE", "RERENDER_KEYFRAME_INDICES", "STRING"]
    outputs = server.run(_empty_image_prompt(frames=9, interval=4, include_last_frame=False))
    assert outputs["2"]["text"] == ["0,4,8"]
    assert len(outputs["3"]["images"]) == 3


@pytest.mark.server
def test_bad_interval_reports_a_clear_error_through_the_server(server):
    from harness.host import PromptFailed

    with pytest.raises(PromptFailed, match="interval 20 is longer than the clip \\(9 frames\\)"):
        server.run(_empty_image_prompt(frames=9, interval=20))
