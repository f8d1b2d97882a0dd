"""Full-size SD1.5 with a ControlNet, loaded by the host's loaders: one control image per key frame."""
from __future__ import annotations

import pytest
import torch

from harness.rendering import CONSTRAINT_NODES, node_defaults
from harness.synthetic import textured


@pytest.fixture(scope="module")
def sd15(host, model_cache):
    model, clip, vae = host.call("CheckpointLoaderSimple", ckpt_name=model_cache.checkpoint().name)
    (positive,) = host.call("CLIPTextEncode", clip=clip, text="a wolf in the snow, oil painting")
    (negative,) = host.call("CLIPTextEncode", clip=clip, text="blurry")
    (control,) = host.call("ControlNetLoader", control_net_name=model_cache.controlnet_file().name)
    return model, vae, positive, negative, control


def frames(count: int, seed: int) -> torch.Tensor:
    """IMAGE batch [count, 64, 64, 3] of distinct textures."""
    return torch.cat([textured(64, 64, seed=seed + i, cell=8) for i in range(count)]).movedim(1, -1)


def with_control(host, sd15, images, strength=1.0):
    model, vae, positive, negative, control = sd15
    return host.call("ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=control,
                     image=images, strength=strength, start_percent=0.0, end_percent=1.0)


def run(host, sd15, key_frames, controls, **overrides):
    model, vae, _, _, _ = sd15
    positive, negative = with_control(host, sd15, controls)
    inputs = dict(node_defaults(host, "RerenderKeyframes"), model=model, positive=positive, negative=negative, vae=vae,
                  key_frames=key_frames, steps=3, cfg=4.0, denoise=1.0)
    return host.call("RerenderKeyframes", **dict(inputs, **overrides))[0]


def test_conditioning_for_a_frame_takes_its_own_control_image(host, pack, sd15):
    controls = frames(3, seed=10)
    positive, _ = with_control(host, sd15, controls)
    positive, _ = host.call("ControlNetApplyAdvanced", positive=positive, negative=positive, control_net=sd15[4],
                            image=controls.flip(0), strength=0.5, start_percent=0.0, end_percent=1.0)
    conditioning = pack.keyframes.conditioning
    for index in range(3):
        hints = conditioning.control_images(conditioning.conditioning_for_frame(positive, index, 3))
        assert torch.equal(hints[0], controls.flip(0).movedim(-1, 1)[index:index + 1])   # the chain's last ControlNet
        assert torch.equal(hints[1], controls.movedim(-1, 1)[index:index + 1])           # and the one before it
    assert all(hint.shape[0] == 3 for hint in conditioning.control_images(positive))     # the user's stay untouched


@pytest.mark.slow
def test_each_key_frame_is_sampled_with_its_own_control_image(host, sd15):
    key_frames, controls = frames(3, seed=0), frames(3, seed=20)
    together = run(host, sd15, key_frames, controls)
    for index in range(3):
        alone = run(host, sd15, key_frames[index:index + 1], controls[index:index + 1])
        assert torch.allclose(together[index], alone[0], atol=1e-5), f"key frame {index} did not use control image {index}"
    with_first_control = run(host, sd15, key_frames[1:2], controls[:1])
    assert not torch.allclose(together[1], with_first_control[0], atol=1e-3), "the control image makes no difference"


@pytest.mark.parametrize("controls, message", [
    (frames(2, seed=5), "has 2 control images but there are 3 key frames"),
    (torch.nn.functional.interpolate(frames(3, seed=5).movedim(-1, 1), size=(32, 32)).movedim(1, -1),
     "control images in positive are 32x32 but the key frames are 64x64"),
])
def test_mismatched_control_images_are_reported(host, sd15, controls, message):
    with pytest.raises(ValueError, match=message):
        run(host, sd15, frames(3, seed=0), controls)


@pytest.mark.server
@pytest.mark.slow
def test_three_key_frames_render_through_the_server(server, model_cache):
    from PIL import Image

    gif = [Image.fromarray((frame.numpy() * 255).astype("uint8")) for frame in frames(3, seed=40)]
    gif[0].save(server.input_dir / "clip.gif", save_all=True, append_images=gif[1:], duration=50, loop=0)
    constraint = {
        "RerenderCrossFrameAttention": dict(start=0.0, end=1.0, loose=False, previous_update_interval=1),
        "RerenderShapeFusion": dict(start=0.0, end=0.1),
        "RerenderPixelFusion": dict(vae=["1", 2], start=0.55, end=0.75, strength=0.5, detail=0.9, smooth_boundary=True),
        "RerenderColorAdaIN": dict(start=0.8, end=1.0),
    }
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model_cache.CHECKPOINT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a wolf, oil painting"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "clip.gif"}},
        "5": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": model_cache.CONTROLNET}},
        "6": {"class_type": "Canny", "inputs": {"image": ["4", 0], "low_threshold": 0.2, "high_threshold": 0.5}},
        "7": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["2", 0], "negative": ["3", 0], "control_net": ["5", 0], "image": ["6", 0],
            "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}},
    }
    previous = ["1", 0]
    for number, node in enumerate(CONSTRAINT_NODES, start=8):
        prompt[str(number)] = {"class_type": node, "inputs": dict(constraint[node], model=previous)}
        previous = [str(number), 0]
    prompt["12"] = {"class_type": "RerenderKeyframes", "inputs": {
        "model": previous, "positive": ["7", 0], "negative": ["7", 1], "vae": ["1", 2], "key_frames": ["4", 0],
        "flow_method": "dis_medium", "seed": 7, "steps": 3, "cfg": 5.0, "scheduler": "ddim_uniform",
        "denoise": 0.75, "anchor_only": False}}
    prompt["13"] = {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}}
    outputs = server.run(prompt, timeout=900)
    assert len(outputs["13"]["images"]) == 3
