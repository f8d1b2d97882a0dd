"""Key-frame references and the attention store keep to the device of the tensors they meet.

With ``--gpu-only`` the decoded images live on the GPU while the flow estimator returns flows and
occlusion masks on the CPU. The ``meta`` device stands in for the GPU here: any tensor left on
the CPU that meets a ``meta`` one raises the same device error a GPU would.
"""
from __future__ import annotations

import pytest
import torch

from harness.synthetic import shifted_clip

META = torch.device("meta")


@pytest.fixture(scope="module")
def clip(host):
    frames, _ = shifted_clip(frames=3, dx=3, dy=1, height=64, width=64)
    return frames


@pytest.fixture(scope="module")
def estimator(pack):
    return pack.flow.dis.DisFlow("medium")


def assert_reference_on(reference, device, dtype, height=64, width=64):
    shapes = {"flow": (1, 2, height, width), "occluded": (1, 1, height, width), "warped": (1, 3, height, width),
              "blend": (1, 1, height, width), "validity": (1, 1, height // 8, width // 8)}
    for name, shape in shapes.items():
        tensor = getattr(reference, name)
        assert tensor.device == device, f"{name} is on {tensor.device}, not {device}"
        assert tuple(tensor.shape) == shape, f"{name} is {tuple(tensor.shape)}, not {shape}"
        assert tensor.dtype == (torch.float32 if name == "flow" else dtype), f"{name} is {tensor.dtype}"


def test_references_live_on_the_device_of_the_rendered_image(pack, clip, estimator):
    references, constraints = pack.keyframes.references, pack.keyframes.constraints
    rendered = torch.empty(1, 3, 64, 64, device=META)   # the GPU-resident decoded key frames
    anchor = references.build_reference(estimator, clip[2:3], clip[:1], rendered)
    previous = references.build_reference(estimator, clip[2:3], clip[1:2], rendered)
    assert_reference_on(anchor, META, torch.float32)
    assert_reference_on(previous, META, torch.float32)
    assert_reference_on(references.identity_reference(rendered), META, torch.float32)

    fresh = torch.empty(1, 3, 64, 64, device=META)
    composite = constraints.composite_references(fresh, previous.warped, previous.blend, anchor.warped, anchor.blend)
    assert composite.device == META and composite.shape == (1, 3, 64, 64)
    blend, validity = constraints.blend_masks(previous.occluded * anchor.occluded)
    assert blend.device == META and blend.shape == (1, 1, 64, 64)
    assert validity.device == META and validity.shape == (1, 1, 8, 8)


def test_a_half_precision_image_gets_masks_in_its_dtype_and_a_float32_flow(pack, clip, estimator):
    references = pack.keyframes.references
    rendered = clip[:1].clone()
    full = references.build_reference(estimator, clip[1:2], clip[:1], rendered)
    half = references.build_reference(estimator, clip[1:2], clip[:1], rendered.half())
    assert_reference_on(half, torch.device("cpu"), torch.float16)
    assert torch.equal(half.flow, full.flow)   # the flow is not rounded to the image's precision
    assert (half.warped.float() - full.warped).abs().max() < 2e-3
    assert torch.equal(half.occluded.float(), full.occluded)
    assert full.occluded.sum() > 0 and full.validity.min() < 1   # the 3 px motion leaves an occluded edge


def test_a_reference_moves_to_the_image_it_meets(pack, clip, estimator):
    reference = pack.keyframes.references.build_reference(estimator, clip[1:2], clip[:1], clip[:1])
    assert_reference_on(reference.to(torch.empty(1, 3, 64, 64, device=META, dtype=torch.bfloat16)),
                        META, torch.bfloat16)


def test_a_rendered_reference_of_another_size_is_reported(pack, clip, estimator):
    with pytest.raises(ValueError, match="rendered reference is 32x32 but the key frame is 64x64"):
        pack.keyframes.references.build_reference(estimator, clip[1:2], clip[:1], torch.rand(1, 3, 32, 32))


def attention_hook(pack, storage, dtype=torch.float16):
    attention, settings = pack.keyframes.attention, pack.keyframes.settings
    features = attention.AttentionFeatures(dtype)
    features.storage = storage
    cross = settings.CrossFrameAttention(settings.StepRange(0.0, 1.0))
    hook = attention.CrossFrameAttentionHook(cross, attention.StepClock(), features)
    return hook, features


def run_hook(hook, n, mode, branches=(1, 0)):
    hook.mode = mode
    return hook(n, n, n, {"block": ("output", 4), "block_index": 0, "cond_or_uncond": list(branches)})


def test_features_stored_on_the_device_are_read_there(pack):
    attention = pack.keyframes.attention
    hook, features = attention_hook(pack, "device")
    n = torch.empty(2, 16, 8, device=META, dtype=torch.bfloat16)
    run_hook(hook, n, attention.RECORD_ANCHOR)
    assert {(t.device, t.dtype) for t in features.anchor.values()} == {(META, torch.float16)}
    _, context, value = run_hook(hook, n, attention.ATTEND_AND_UPDATE)
    assert context.device == META and context.dtype == torch.bfloat16 and context.shape == (2, 32, 8)
    assert value is context


def test_features_kept_in_host_ram_are_moved_to_the_attention_input_when_read(pack):
    attention = pack.keyframes.attention
    hook, features = attention_hook(pack, "cpu")
    staged = []
    features.to_host = lambda tensor: staged.append(tensor) or tensor.cpu()
    generator = torch.Generator().manual_seed(0)
    anchor_input = torch.randn(2, 16, 8, generator=generator).to(torch.bfloat16)
    run_hook(hook, anchor_input, attention.RECORD_ANCHOR)
    assert len(staged) == 2 and {t.device.type for t in features.anchor.values()} == {"cpu"}
    later = torch.randn(2, 16, 8, generator=generator).to(torch.bfloat16)
    n, context, _ = run_hook(hook, later, attention.ATTEND_AND_UPDATE)
    assert n is later and context.dtype == torch.bfloat16
    expected = torch.cat((anchor_input[:1], anchor_input[:1]), dim=1).half().to(torch.bfloat16)
    assert torch.equal(context[:1], expected)
    assert len(staged) == 4   # the new "previous" went to host RAM too
    assert torch.equal(features.previous[(0, ("output", 4), 0, 1)], later[:1].half())
