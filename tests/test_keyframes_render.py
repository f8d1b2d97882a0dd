"""RerenderKeyframes and the constraint nodes on the real host with a tiny SD1.5-shaped model."""
from __future__ import annotations

import pytest
import torch

from harness.models import tiny_conditioning, write_random_lora
from harness.rendering import CONSTRAINT_NODES, constrain, node_defaults, render
from harness.synthetic import shifted_clip, textured


@pytest.fixture(scope="module")
def clip(host):
    frames, _ = shifted_clip(frames=3, dx=3, dy=1, height=64, width=64)
    return frames


def test_each_constraint_changes_the_output(host, pack, model, vae, clip):
    # At denoise 1 the run reaches every default range: 8 ddim_uniform steps run t = 876, 751, ..., 1, and
    # shape fusion's default range is t >= 851 (the reference's first 10 %).
    base, _, _ = render(pack, model, vae, clip, steps=8, denoise=1.0)
    for node in CONSTRAINT_NODES:
        images, _, _ = render(pack, constrain(host, model, vae, node), vae, clip, steps=8, denoise=1.0)
        assert not torch.allclose(images[1:], base[1:], atol=1e-3), f"{node} did not change the key frames"


def test_shape_fusion_at_its_default_range_does_nothing_at_denoise_075(host, pack, model, vae, clip):
    # As in the reference: denoise 0.75 starts below the noise levels of shape fusion's default range.
    base, base_latents, renderer = render(pack, model, vae, clip)
    assert max(renderer.timesteps) < 851
    images, latents, _ = render(pack, constrain(host, model, vae, "RerenderShapeFusion"), vae, clip)
    assert torch.equal(latents, base_latents) and torch.equal(images, base)


@pytest.mark.parametrize("node", CONSTRAINT_NODES)
def test_an_empty_step_range_changes_nothing(host, pack, model, vae, clip, node):
    base, base_latents, _ = render(pack, model, vae, clip)
    images, latents, _ = render(pack, constrain(host, model, vae, node, start=1.0, end=0.0), vae, clip)
    assert torch.equal(latents, base_latents) and torch.equal(images, base)


def test_cross_frame_attention_on_the_frame_itself_is_self_attention(host, pack, model, vae, clip):
    same = torch.cat([clip[:1], clip[:1]])
    attending = constrain(host, model, vae, "RerenderCrossFrameAttention")
    images, latents, _ = render(pack, attending, vae, same, feature_dtype=torch.float32)
    assert (latents[1] - latents[0]).abs().max() < 1e-4
    assert (images[1] - images[0]).abs().max() < 1e-4
    # With the default half-precision store only rounding separates the two.
    images, latents, _ = render(pack, attending, vae, same)
    assert (latents[1] - latents[0]).abs().max() < 2e-2


def record_x0(store):
    return lambda key, pass_index, step, x0: store.__setitem__((key, pass_index, step), x0.clone())


def test_adain_gives_each_frame_the_anchor_statistics_at_the_same_step(host, pack, model, vae):
    frames = torch.cat([textured(64, 64, seed=1), textured(64, 64, seed=2)])
    x0 = {}
    adain = constrain(host, model, vae, "RerenderColorAdaIN")
    _, _, renderer = render(pack, adain, vae, frames, steps=10, on_step=record_x0(x0))
    stats = pack.keyframes.constraints.channel_stats
    # 10 steps at denoise 0.75 run t = 685, 609, ..., 153, 77, 1: the default range (t <= 151) holds steps 8, 9.
    assert [int(t) for t in renderer.timesteps[7:]] == [153, 77, 1]
    for step in (8, 9):
        (anchor_mean, anchor_std), (mean, std) = stats(x0[0, 0, step]), stats(x0[1, 0, step])
        assert torch.allclose(mean, anchor_mean, atol=1e-4) and torch.allclose(std, anchor_std, atol=1e-4)
    assert not torch.allclose(stats(x0[1, 0, 7])[0], stats(x0[0, 0, 7])[0], atol=1e-3)   # t 153: just outside
    assert not torch.allclose(stats(x0[1, 0, 0])[0], stats(x0[0, 0, 0])[0], atol=1e-3)   # outside the range


def test_shape_fusion_with_identity_flow_pastes_the_anchor_x0(host, pack, model, vae, clip):
    x0 = {}
    # end 0.55: down to t = 401, i.e. steps 0-3 (t 685, 609, 533, 457) of 10 at denoise 0.75.
    shape = constrain(host, model, vae, "RerenderShapeFusion", end=0.55)
    render(pack, shape, vae, torch.cat([clip[:1], clip[:1]]), steps=10, on_step=record_x0(x0))
    for step in (0, 1, 2, 3):
        assert torch.equal(x0[1, 0, step], x0[0, 0, step])


def all_constraints(host, model, vae):
    return constrain(host, model, vae, *CONSTRAINT_NODES)


def test_pixel_fusion_fuses_every_key_frame_against_the_anchors_plain_render(host, pack, model, vae, clip):
    # A still clip: every key frame is the anchor's frame, so each key frame's fused pass meets the same
    # target as the anchor's own (its plain render) and gives the same output. Fusing them against the
    # anchor's fused output instead put two fused passes between them and the plain render, and the
    # sweep (bench/keyframes_consistency.py) showed the anchor then stood apart from every later key frame.
    still = clip[:1].expand(3, -1, -1, -1).contiguous()
    no_motion = lambda source, target: torch.zeros(source.shape[0], 2, *source.shape[-2:])  # noqa: E731
    fusing = constrain(host, model, vae, "RerenderPixelFusion")
    images, _, _ = render(pack, fusing, vae, still, flow=no_motion)
    plain, _, _ = render(pack, model, vae, still[:1])
    assert (images[1:] - images[:1]).abs().max() < 1e-5
    assert (images[0] - plain[0]).abs().max() > 1e-3, "the fused pass did not change the anchor"


def test_pixel_fusion_fuses_occluded_pixels_toward_the_frames_own_render(host, pack, model, vae, clip):
    # A still clip of two key frames whose flow says the left half of the second lies outside the
    # anchor: there the composite holds the frame's own first render, the same as the anchor's (same
    # frame, same noise). fuse_occluded (the default) fuses those pixels toward it, as the anchor is
    # fused toward its own render, so the second key frame comes out as the anchor; off (the
    # reference's way) they are left unfused and differ from the anchor there.
    still = clip[:1].expand(2, -1, -1, -1).contiguous()

    def left_half_leaves(source, target):
        flow = torch.zeros(source.shape[0], 2, *source.shape[-2:])
        flow[:, 0, :, :32] = -1000.0
        return flow

    fused, _, _ = render(pack, constrain(host, model, vae, "RerenderPixelFusion"), vae, still, flow=left_half_leaves)
    assert (fused[1:] - fused[:1]).abs().max() < 1e-5
    reference_way = constrain(host, model, vae, "RerenderPixelFusion", fuse_occluded=False)
    unfused, _, _ = render(pack, reference_way, vae, still, flow=left_half_leaves)
    assert (unfused[1:, ..., :24] - unfused[:1, ..., :24]).abs().max() > 1e-3
    assert torch.equal(unfused[0], fused[0]), "the anchor has nothing occluded: the setting cannot change it"


def test_rendering_is_deterministic_and_anchor_only_previews_frame_zero(host, pack, model, vae, clip):
    constrained = all_constraints(host, model, vae)
    first, first_latents, _ = render(pack, constrained, vae, clip)
    second, second_latents, _ = render(pack, constrained, vae, clip)
    assert torch.equal(first, second) and torch.equal(first_latents, second_latents)
    anchor, _, _ = render(pack, constrained, vae, clip, anchor_only=True)
    assert anchor.shape[0] == 1 and torch.equal(anchor[0], first[0])


def test_features_are_stored_in_half_precision_and_freed(host, pack, model, vae, clip):
    import comfy.model_management

    constrained = all_constraints(host, model, vae)
    during = []
    renderer = None

    def watch(key, pass_index, step, x0):
        during.append(renderer.stored_bytes())

    keyframes = pack.keyframes.renderer
    renderer = keyframes.KeyframeRenderer(constrained, vae, tiny_conditioning(1), tiny_conditioning(2),
                                          pack.flow.dis.DisFlow("medium"),
                                          keyframes.SamplingSettings(3, 6, 3.0, "ddim_uniform", 0.75), on_step=watch)
    with torch.inference_mode():
        renderer.render(clip)
    assert max(during) > 0 and renderer.stored_bytes() == 0
    assert {t.dtype for t in renderer.features.anchor.values()} <= {torch.float16}

    def interrupt(done, total, preview):
        if done == 8:
            raise comfy.model_management.InterruptProcessingException()

    stopped = keyframes.KeyframeRenderer(constrained, vae, tiny_conditioning(1), tiny_conditioning(2),
                                         pack.flow.dis.DisFlow("medium"),
                                         keyframes.SamplingSettings(3, 6, 3.0, "ddim_uniform", 0.75), report=interrupt)
    with pytest.raises(comfy.model_management.InterruptProcessingException), torch.inference_mode():
        stopped.render(clip)
    assert stopped.stored_bytes() == 0


def test_progress_counts_frames_times_steps_times_passes(host, pack, model, vae, clip):
    reports = []
    render(pack, all_constraints(host, model, vae), vae, clip, steps=5,
           report=lambda done, total, preview: reports.append((done, total)))
    assert reports[-1] == (3 * 5 * 2, 3 * 5 * 2)   # 3 key frames, 5 steps, 2 passes with pixel fusion
    assert [done for done, _ in reports] == list(range(1, 31))


def keyframes_node(host, model, vae, image, **overrides):
    inputs = dict(node_defaults(host, "RerenderKeyframes"), model=model, positive=tiny_conditioning(1),
                  negative=tiny_conditioning(2), vae=vae, key_frames=image, steps=4, cfg=3.0)
    return host.call("RerenderKeyframes", **dict(inputs, **overrides))


def test_node_outputs_images_and_latents(host, model, vae, clip):
    images, latents = keyframes_node(host, all_constraints(host, model, vae), vae, clip.movedim(1, -1))
    assert images.shape == (3, 64, 64, 3) and 0 <= images.min() and images.max() <= 1
    assert latents["samples"].shape == (3, 4, 8, 8)


def test_interrupting_the_node_stops_it(host, model, vae, clip):
    import comfy.model_management

    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            keyframes_node(host, all_constraints(host, model, vae), vae, clip.movedim(1, -1))
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_constrained_model_samples_unchanged_in_a_plain_ksampler(host, model, vae):
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    inputs = dict(seed=5, steps=4, cfg=3.0, sampler_name="euler", scheduler="normal", positive=tiny_conditioning(1),
                  negative=tiny_conditioning(2), latent_image=latent, denoise=1.0)
    (plain,) = host.call("KSampler", model=model, **inputs)
    (patched,) = host.call("KSampler", model=all_constraints(host, model, vae), **inputs)
    assert torch.equal(plain["samples"], patched["samples"])


def test_freeu_and_lora_work_in_front(host, model, vae, clip, tmp_path):
    image = clip.movedim(1, -1)
    constrained = all_constraints(host, model, vae)
    (base, _) = keyframes_node(host, constrained, vae, image)
    (freeu,) = host.call("FreeU_V2", model=model, b1=1.3, b2=1.4, s1=0.9, s2=0.2)
    (with_freeu, _) = keyframes_node(host, all_constraints(host, freeu, vae), vae, image)
    assert not torch.allclose(with_freeu, base, atol=1e-3)
    loras = tmp_path / "loras"
    unet = model.model.diffusion_model.state_dict()
    write_random_lora(loras / "tiny_style.safetensors", {name: tuple(t.shape) for name, t in unet.items()})
    host.folder_paths().add_model_folder_path("loras", str(loras))
    (lora,) = host.call("LoraLoaderModelOnly", model=model, lora_name="tiny_style.safetensors", strength_model=1.0)
    (with_lora, _) = keyframes_node(host, all_constraints(host, lora, vae), vae, image)
    assert not torch.allclose(with_lora, base, atol=1e-3)


def tiny_sd2_model():
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models
    from harness.models import TINY_UNET_CONFIG

    config = comfy.supported_models.SD20(dict(TINY_UNET_CONFIG, use_linear_in_transformer=True))
    config.unet_config.update(num_head_channels=8, num_heads=-1)
    config.set_inference_dtype(torch.float32, None)
    base = comfy.model_base.BaseModel(config, device=torch.device("cpu"))
    return comfy.model_patcher.ModelPatcher(base, torch.device("cpu"), torch.device("cpu"))


@pytest.mark.parametrize("case, message", [
    ("no frames", "key_frames is empty"),
    ("size", "divisible by 8"),
    ("steps", "at least 2 steps"),
    ("family", "needs a Stable Diffusion 1.5 model, but this model is SD20"),
])
def test_bad_input_is_reported(host, model, vae, case, message):
    image = torch.rand(2, 64, 64, 3)
    overrides = {"no frames": dict(key_frames=torch.rand(0, 64, 64, 3)), "size": dict(key_frames=torch.rand(2, 60, 64, 3)),
                 "steps": dict(steps=1), "family": {}}[case]
    with pytest.raises(ValueError, match=message):
        keyframes_node(host, tiny_sd2_model() if case == "family" else model, vae, image, **overrides)
