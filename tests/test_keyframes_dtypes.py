"""RerenderKeyframes with all four constraints on half-precision models: bf16 and manual-cast fp16
UNets and an fp16 ControlNet, as users load them on GPUs."""
from __future__ import annotations

import pytest
import torch

from harness.models import tiny_conditioning, tiny_controlnet, tiny_sd15
from harness.rendering import CONSTRAINT_NODES, constrain, node_defaults
from harness.synthetic import shifted_clip, textured


@pytest.fixture(scope="module")
def key_frames(host):
    frames, _ = shifted_clip(frames=3, dx=3, dy=1, height=64, width=64)
    return frames.movedim(1, -1)


def render_keyframes(host, model, vae, key_frames, positive=None, negative=None):
    inputs = dict(node_defaults(host, "RerenderKeyframes"), model=constrain(host, model, vae, *CONSTRAINT_NODES),
                  positive=positive or tiny_conditioning(1), negative=negative or tiny_conditioning(2), vae=vae,
                  key_frames=key_frames, steps=4, cfg=3.0)
    images, latents = host.call("RerenderKeyframes", **inputs)
    return images, latents["samples"]


def assert_finite_key_frames(images, latents):
    assert images.shape == (3, 64, 64, 3) and latents.shape == (3, 4, 8, 8)
    assert torch.isfinite(images).all() and torch.isfinite(latents).all()
    assert 0 <= images.min() and images.max() <= 1


@pytest.mark.parametrize("dtype, manual_cast_dtype", [(torch.bfloat16, None), (torch.float16, torch.float32)],
                         ids=["bf16", "fp16-manual-cast"])
def test_half_precision_unet_renders_finite_key_frames(host, vae, key_frames, dtype, manual_cast_dtype):
    model = tiny_sd15(seed=0, dtype=dtype, manual_cast_dtype=manual_cast_dtype)
    assert next(model.model.diffusion_model.parameters()).dtype == dtype
    images, latents = render_keyframes(host, model, vae, key_frames)
    assert_finite_key_frames(images, latents)
    # Half precision changes the rounding, not the picture: the float32 model renders nearly the same.
    reference, _ = render_keyframes(host, tiny_sd15(seed=0), vae, key_frames)
    assert (images - reference).abs().mean() < 0.05


def test_fp16_controlnet_with_one_control_image_per_key_frame(host, vae, key_frames):
    model = tiny_sd15(seed=0)
    control_net = tiny_controlnet(torch.float16)
    assert next(control_net.control_model.parameters()).dtype == torch.float16
    controls = torch.cat([textured(64, 64, seed=30 + i, cell=8) for i in range(3)]).movedim(1, -1)
    positive, negative = host.call("ControlNetApplyAdvanced", positive=tiny_conditioning(1),
                                   negative=tiny_conditioning(2), control_net=control_net, image=controls,
                                   strength=1.0, start_percent=0.0, end_percent=1.0)
    images, latents = render_keyframes(host, model, vae, key_frames, positive, negative)
    assert_finite_key_frames(images, latents)
    plain, _ = render_keyframes(host, model, vae, key_frames)
    assert not torch.allclose(images, plain, atol=1e-3), "the ControlNet made no difference"
