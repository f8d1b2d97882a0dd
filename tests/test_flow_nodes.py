"""The optical flow nodes in the host: outputs, the Unimatch input, bad input, server."""
from __future__ import annotations

import pytest
import torch

from harness.host import PromptFailed
from harness.synthetic import shifted_clip


def clip_image(frames: int = 4) -> torch.Tensor:
    clip, _ = shifted_clip(frames)
    return clip.movedim(1, -1)


def flow_of(host, image, method="dis_medium"):
    (video_flow,) = host.call("RerenderOpticalFlow", frames=image, method=method, raft_iterations=12,
                              raft_half_precision=False)
    return video_flow


def test_method_list_offers_dis_presets_and_raft_files(host, raft_weights):
    methods = host.nodes.NODE_CLASS_MAPPINGS["RerenderOpticalFlow"].INPUT_TYPES()["required"]["method"][0]
    assert methods[:4] == ["dis_medium", "dis_fine", "dis_fast", "dis_ultrafast"]
    assert {"raft-sintel.pth", "raft-small.pth", "raft-kitti.pth"} <= set(methods)


def test_flow_node_outputs_a_video_flow(host, pack):
    video_flow = flow_of(host, clip_image(4))
    assert isinstance(video_flow, pack.flow.video_flow.VideoFlow)
    assert video_flow.forward.shape == video_flow.backward.shape == (3, 2, 48, 64)
    assert video_flow.occluded_forward.shape == (3, 1, 48, 64)
    assert video_flow.method == "dis_medium"


def test_preview_and_warp_nodes(host):
    image = clip_image(4)
    video_flow = flow_of(host, image)
    (preview,) = host.call("RerenderFlowPreview", direction="backward", show_occlusions=True, flow=video_flow)
    assert preview.shape == (3, 48, 64, 3) and 0 <= preview.min() and preview.max() <= 1
    warped, occlusion = host.call("RerenderWarp", images=image, direction="previous_to_next",
                                  interpolation="bilinear", flow=video_flow)
    assert warped.shape == image.shape and occlusion.shape == (4, 48, 64)
    assert torch.equal(warped[0], image[0])
    interior = (slice(1, None), slice(10, -10), slice(10, -10))
    assert (warped[interior] - image[interior]).abs().mean() < (image[:-1] - image[1:]).abs().mean() / 3


def test_warp_accepts_unimatch_optical_flow(host):
    image = clip_image(4)
    _, forward = shifted_clip(4)
    unimatch_backward = (-forward).permute(0, 2, 3, 1)   # made with Unimatch's backward_flow switched on
    warped, occlusion = host.call("RerenderWarp", images=image, direction="previous_to_next",
                                  interpolation="nearest", optical_flow=unimatch_backward)
    interior = (slice(1, None), slice(8, -8), slice(8, -8))
    assert torch.allclose(warped[interior], image[interior], atol=1e-5)
    assert occlusion[1:, :, :2].min() == 1   # the left columns come from outside the previous frame
    (preview,) = host.call("RerenderFlowPreview", direction="forward", show_occlusions=False,
                           optical_flow=unimatch_backward)
    assert preview.shape == (3, 48, 64, 3)


@pytest.mark.parametrize("frames, message", [
    (torch.rand(1, 32, 32, 3), "at least 2"),
    (torch.rand(3, 32, 32, 1), "greyscale"),
    (torch.rand(3, 32, 32, 4), "alpha channel"),
])
def test_flow_node_rejects_bad_frames(host, frames, message):
    with pytest.raises(ValueError, match=message):
        flow_of(host, frames)


def test_unknown_method_is_reported_with_the_choices(host):
    with pytest.raises(ValueError, match="Unknown optical flow method 'farneback': choose one of dis_medium"):
        flow_of(host, clip_image(2), method="farneback")
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0}},
        "2": {"class_type": "RerenderOpticalFlow", "inputs": {"frames": ["1", 0], "method": "farneback",
                                                              "raft_iterations": 12, "raft_half_precision": False}},
        "3": {"class_type": "RerenderFlowPreview", "inputs": {"flow": ["2", 0], "direction": "forward",
                                                              "show_occlusions": True}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    with pytest.raises(PromptFailed):
        host.execute(prompt)   # the host itself refuses a value outside the list


def test_flow_and_frames_of_different_sizes_are_rejected(host, pack):
    video_flow = flow_of(host, clip_image(3))
    with pytest.raises(ValueError, match="compute the flow at the frames' size"):
        host.call("RerenderWarp", images=torch.rand(3, 32, 32, 3), direction="previous_to_next",
                  interpolation="bilinear", flow=video_flow)
    with pytest.raises(ValueError, match="hold 5 frames but the flow was computed for 3"):
        host.call("RerenderWarp", images=torch.rand(5, 48, 64, 3), direction="previous_to_next",
                  interpolation="bilinear", flow=video_flow)
    with pytest.raises(ValueError, match="resize them to the same size"):
        pack.flow.video_flow.bidirectional_flow(pack.flow.dis.DisFlow(), torch.rand(1, 3, 64, 64),
                                                torch.rand(1, 3, 32, 32))


def test_flow_sockets_need_exactly_one_connection(host):
    video_flow = flow_of(host, clip_image(3))
    with pytest.raises(ValueError, match="No flow connected"):
        host.call("RerenderFlowPreview", direction="forward", show_occlusions=True)
    with pytest.raises(ValueError, match="connect only one"):
        host.call("RerenderFlowPreview", direction="forward", show_occlusions=True, flow=video_flow,
                  optical_flow=video_flow.forward.permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="OPTICAL_FLOW output of the Unimatch"):
        host.call("RerenderFlowPreview", direction="forward", show_occlusions=True, optical_flow=torch.rand(3, 8, 8))


def test_missing_and_wrong_weight_files_are_explained(pack, tmp_path, model_cache):
    load = pack.flow.raft.load_raft
    with pytest.raises(ValueError, match="RAFT weights not found: .*models/optical_flow"):
        load(tmp_path / "raft-things.pth")
    (tmp_path / "notes.pth").write_text("not weights")
    with pytest.raises(ValueError, match="notes.pth is not a RAFT checkpoint: it could not be read"):
        load(tmp_path / "notes.pth")
    with pytest.raises(ValueError, match="is not a RAFT checkpoint \\(its weights are named like control_model"):
        load(model_cache.controlnet_file())
    torch.save({"fnet.conv1.weight": torch.zeros(1)}, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="broken.pth is not a RAFT small checkpoint: 105 weights are missing"):
        load(tmp_path / "broken.pth")


@pytest.mark.server
def test_flow_nodes_through_the_server(server):
    methods = server.object_info("RerenderOpticalFlow")["RerenderOpticalFlow"]["input"]["required"]["method"][0]
    assert "raft-sintel.pth" in methods
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 3, "color": 1234567}},
        "2": {"class_type": "RerenderOpticalFlow", "inputs": {"frames": ["1", 0], "method": "raft-small.pth",
                                                              "raft_iterations": 4, "raft_half_precision": False}},
        "3": {"class_type": "RerenderFlowPreview", "inputs": {"flow": ["2", 0], "direction": "forward",
                                                              "show_occlusions": True}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        "5": {"class_type": "RerenderWarp", "inputs": {"images": ["1", 0], "flow": ["2", 0],
                                                       "direction": "next_to_previous", "interpolation": "bilinear"}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }
    outputs = server.run(prompt)
    assert len(outputs["4"]["images"]) == 2
    assert len(outputs["6"]["images"]) == 3
