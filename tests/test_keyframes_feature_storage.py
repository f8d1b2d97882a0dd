"""The cross-frame attention store: its size known before sampling, and where it is kept."""
from __future__ import annotations

import logging

import pytest
import torch

from harness.models import tiny_conditioning
from harness.rendering import constrain, node_defaults, render
from harness.synthetic import shifted_clip


def largest_store(pack, model, vae, frames, steps, cfg):
    """The most bytes the attention store held at any step of a real render, and the renderer."""
    keyframes = pack.keyframes.renderer
    sizes = []
    renderer = keyframes.KeyframeRenderer(model, vae, tiny_conditioning(1), tiny_conditioning(2),
                                          pack.flow.dis.DisFlow("medium"),
                                          keyframes.SamplingSettings(3, steps, cfg, "ddim_uniform", 0.75),
                                          on_step=lambda *_: sizes.append(renderer.features.nbytes()))
    with torch.inference_mode():
        renderer.render(frames)
    return max(sizes), renderer


@pytest.mark.parametrize("settings, cfg, active_steps", [
    (dict(), 3.0, 6),                                                      # blocks 3-11, anchor + previous
    (dict(loose=True, start=0.2, end=0.7), 3.0, 4),                        # blocks 6-11, t 751-251: 4 of 6
    (dict(previous_update_interval=0), 1.0, 6),                            # one store, one CFG branch
], ids=["default", "loose-partial-range", "anchor-only-cfg1"])
def test_estimate_equals_the_store_measured_in_a_render(host, pack, model, vae, settings, cfg, active_steps):
    # 48x80: latent 6x10, so the levels are 6x10, 3x5 and 2x3 (sides round up when halved).
    frames, _ = shifted_clip(frames=3, dx=3, dy=1, height=48, width=80)
    attending = constrain(host, model, vae, "RerenderCrossFrameAttention", **settings)
    cross = pack.keyframes.settings.constraints_of(attending).cross_frame_attention
    measured, renderer = largest_store(pack, attending, vae, frames, steps=6, cfg=cfg)
    # 6 steps at denoise 0.75 run t = 626, 501, 376, 251, 126, 1.
    assert sum(cross.steps.active(t) for t in renderer.timesteps) == active_steps
    estimate = pack.keyframes.attention.estimate_feature_bytes(
        model.model.model_config.unet_config, cross, 6, 10, timesteps=renderer.timesteps, cfg=cfg, frame_count=3,
        element_size=2)
    assert estimate == measured > 0


def test_the_estimate_scales_as_full_size_sd15_needs(pack):
    from harness.models import SD15_UNET_CONFIG

    attention, settings = pack.keyframes.attention, pack.keyframes.settings
    cross = settings.CrossFrameAttention(settings.StepRange(0.0, 1.0))
    timesteps = [951 - 50 * i for i in range(20)]   # 20 ddim_uniform steps at denoise 1
    # 512x512 (latent 64²), 20 steps, both CFG branches, half precision: per step and branch 3 layers
    # of 1280 ch x 16² tokens, 3 of 640 x 32², 3 of 320 x 64²; 525 MiB per store, as measured in the README.
    per_step_branch = 3 * (1280 * 16 ** 2 + 640 * 32 ** 2 + 320 * 64 ** 2)
    one_store = per_step_branch * 20 * 2 * 2
    assert one_store == 525 * 2 ** 20
    assert attention.estimate_feature_bytes(SD15_UNET_CONFIG, cross, 64, 64, timesteps, 7.5, 10, 2) == 2 * one_store
    # A single key frame never moves the previous reference on.
    assert attention.estimate_feature_bytes(SD15_UNET_CONFIG, cross, 64, 64, timesteps, 7.5, 1, 2) == one_store
    loose = settings.CrossFrameAttention(settings.StepRange(0.0, 1.0), loose=True)
    assert attention.estimate_feature_bytes(SD15_UNET_CONFIG, loose, 64, 64, timesteps, 1.0, 10, 2) == \
        3 * (640 * 32 ** 2 + 320 * 64 ** 2) * 20 * 2 * 2


@pytest.mark.parametrize("requested, needed, device_type, free, chosen", [
    ("device", 10 ** 12, "cuda", 0, "device"),     # obeyed even when it will not fit
    ("cpu", 1, "cuda", 10 ** 12, "cpu"),           # obeyed even when it would fit
    ("auto", 10 ** 12, "cpu", 0, "device"),        # a CPU device: host RAM is all there is
    ("auto", 800, "cuda", 1000, "device"),         # fits into the usable 80 % of the free memory
    ("auto", 801, "cuda", 1000, "cpu"),            # does not fit: host RAM
])
def test_feature_storage_decision(pack, requested, needed, device_type, free, chosen):
    assert pack.keyframes.attention.choose_feature_storage(requested, needed, device_type, free, 0.8) == chosen


def test_an_unknown_feature_storage_is_reported(pack):
    settings = pack.keyframes.settings
    with pytest.raises(ValueError, match="feature_storage is 'gpu': choose one of auto, device, cpu"):
        pack.keyframes.attention.choose_feature_storage("gpu", 1, "cuda", 1)
    with pytest.raises(ValueError, match="feature_storage is 'gpu'"):
        settings.CrossFrameAttention(settings.StepRange(0.0, 1.0), feature_storage="gpu")


def test_feature_storage_is_an_optional_input_that_defaults_to_auto(host, pack, model):
    node = host.nodes.NODE_CLASS_MAPPINGS["RerenderCrossFrameAttention"]
    choices, options = node.INPUT_TYPES()["optional"]["feature_storage"]
    assert list(choices) == ["auto", "device", "cpu"] and options["default"] == "auto" and options["tooltip"]
    constraints_of = pack.keyframes.settings.constraints_of
    # Saved workflows and API prompts from before the input existed leave it out.
    defaults = node_defaults(host, "RerenderCrossFrameAttention")
    (without,) = host.call("RerenderCrossFrameAttention", model=model, **defaults)
    assert constraints_of(without).cross_frame_attention.feature_storage == "auto"
    (in_ram,) = host.call("RerenderCrossFrameAttention", model=model, feature_storage="cpu", **defaults)
    assert constraints_of(in_ram).cross_frame_attention.feature_storage == "cpu"


def test_features_kept_in_host_ram_render_the_same_and_the_choice_is_logged(host, pack, model, vae, caplog):
    frames, _ = shifted_clip(frames=3, dx=3, dy=1, height=64, width=64)
    caplog.set_level(logging.INFO)
    results = {}
    for storage in ("device", "cpu", "auto"):
        attending = host.call("RerenderCrossFrameAttention", model=model, feature_storage=storage,
                              **node_defaults(host, "RerenderCrossFrameAttention"))[0]
        images, _, renderer = render(pack, attending, vae, frames, steps=4)
        results[storage] = (images, renderer.features.storage)
    assert results["cpu"][1] == "cpu" and results["device"][1] == "device"
    assert results["auto"][1] == "device"   # the test host runs on the CPU
    assert torch.equal(results["cpu"][0], results["device"][0])
    messages = [r.getMessage() for r in caplog.records if "cross-frame attention stores" in r.getMessage()]
    assert len(messages) == 3
    assert "feature_storage cpu" in messages[1] and "kept in host RAM" in messages[1]
    assert "feature_storage auto" in messages[2] and "kept on cpu" in messages[2]
