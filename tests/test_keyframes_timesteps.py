"""The constraints act at the reference's diffusion timesteps, whatever the denoise and step count.

The reference samples a fixed 20-step DDIM schedule, t = 951 − 50·i, and selects steps by index:
cross-frame attention on all of them, shape-aware fusion on steps 0–2 (t 951…851), pixel-aware
fusion on 11–15 (t 401…201), AdaIN on 16–19 (t 151…1). A denoise (its x0 strength) below 1 only
skips the first steps: at 0.75 it starts at step 5 (t 701), so shape fusion never runs.

The test renders real key frames on the host and records, through real hooks, the timestep the
UNet was called with in every step and which constraint acted in that step: a forward pre-hook on
the UNet, and wrappers around the constraint functions the renderer calls (AdaIN, shape fusion,
the pixel-fusion blend, and the attention store's read of the anchor/previous features).
"""
from __future__ import annotations

import pytest
import torch

from harness.rendering import CONSTRAINT_NODES, constrain, render
from harness.synthetic import shifted_clip

INFINITY = float("inf")
# Per constraint: the timesteps of the reference's steps where it acts (spec §1.4, §1.2), as (lowest, highest).
# Shape fusion's first step (t 951) stands for everything noisier, as does cross-frame attention's.
REFERENCE = {
    "cross_frame_attention": (-INFINITY, INFINITY),   # steps 0-19: t 951...1
    "shape_fusion": (851, INFINITY),                  # steps 0-2: t 951, 901, 851
    "pixel_fusion": (201, 401),                       # steps 11-15: t 401...201
    "color_adain": (-INFINITY, 151),                  # steps 16-19: t 151...1
}
NAMES = tuple(REFERENCE)


class Recorder:
    """Collects, per (key frame, pass, step), the UNet's timesteps and the constraints that acted."""

    def __init__(self):
        self.unet: set[int] = set()
        self.acted: set[str] = set()
        self.steps: dict[tuple[int, int, int], tuple[set[int], set[str]]] = {}

    def on_unet(self, module, args, kwargs):
        timesteps = args[1] if len(args) > 1 else kwargs["timesteps"]
        self.unet.update(int(round(float(t))) for t in timesteps.flatten())

    def on_step(self, key_index, pass_index, step, x0):
        self.steps[key_index, pass_index, step] = (self.unet, self.acted)
        self.unet, self.acted = set(), set()

    def wrap(self, name, function):
        def recorded(*args, **kwargs):
            self.acted.add(name)
            return function(*args, **kwargs)
        return recorded

    def timesteps(self, key_index, pass_index, name=None) -> list[int]:
        """The UNet timesteps of the steps of one pass (where ``name`` acted, if given), in order."""
        found = []
        for (key, pass_, _), (unet, acted) in sorted(self.steps.items()):
            if key == key_index and pass_ == pass_index and (name is None or name in acted):
                assert len(unet) == 1, f"one step ran the UNet at several timesteps: {sorted(unet)}"
                found.append(next(iter(unet)))
        return found


def record_render(host, pack, model, vae, steps, denoise) -> Recorder:
    recorder = Recorder()
    renderer_module, attention_module = pack.keyframes.renderer, pack.keyframes.attention
    clip, _ = shifted_clip(frames=2, dx=3, dy=1, height=64, width=64)
    constrained = constrain(host, model, vae, *CONSTRAINT_NODES)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(renderer_module, "adain", recorder.wrap("color_adain", renderer_module.adain))
        patch.setattr(renderer_module, "shape_fusion", recorder.wrap("shape_fusion", renderer_module.shape_fusion))
        patch.setattr(renderer_module, "pixel_fusion_blend",
                      recorder.wrap("pixel_fusion", renderer_module.pixel_fusion_blend))
        # Read only when a frame attends to the anchor's and previous key frame's features.
        patch.setattr(attention_module.AttentionFeatures, "context",
                      recorder.wrap("cross_frame_attention", attention_module.AttentionFeatures.context))
        handle = model.model.diffusion_model.register_forward_pre_hook(recorder.on_unet, with_kwargs=True)
        try:
            render(pack, constrained, vae, clip, steps=steps, denoise=denoise, on_step=recorder.on_step)
        finally:
            handle.remove()
    return recorder


CASES = [(20, 0.75), (20, 1.0), (10, 1.0)]


@pytest.fixture(scope="module")
def recordings(host, pack, model, vae):
    return {case: record_render(host, pack, model, vae, *case) for case in CASES}


def in_reference_range(name, timesteps):
    low, high = REFERENCE[name]
    return [t for t in timesteps if low <= t <= high]


@pytest.mark.parametrize("steps, denoise", CASES)
def test_each_constraint_runs_at_the_reference_timesteps(recordings, steps, denoise):
    recorder = recordings[steps, denoise]
    run = recorder.timesteps(1, 0)
    assert len(run) == steps
    print(f"\n{steps} steps, denoise {denoise}: the UNet ran at t = {run}")
    for name in NAMES:
        print(f"  {name:22s} key frame 1, pass 1: {recorder.timesteps(1, 0, name)}; "
              f"pass 2: {recorder.timesteps(1, 1, name)}")
    # The anchor's first pass is a plain render: it only records what later frames are held to.
    assert all(not acted for (key, pass_, _), (_, acted) in recorder.steps.items() if (key, pass_) == (0, 0))
    for key, pass_ in ((0, 1), (1, 0), (1, 1)):
        assert recorder.timesteps(key, pass_) == run   # every pass of every key frame runs the same schedule
        for name in NAMES:
            # Pixel fusion blends in the second pass only; its first pass renders what it fuses over.
            expected = [] if name == "pixel_fusion" and pass_ == 0 else in_reference_range(name, run)
            assert recorder.timesteps(key, pass_, name) == expected, (name, key, pass_)


def test_at_the_default_denoise_the_ranges_hit_the_reference_noise_levels(recordings):
    recorder = recordings[20, 0.75]
    spacing = 38   # 20 steps at denoise 0.75: the host runs t = 723, 685, ..., 39, 1
    assert recorder.timesteps(1, 1) == [723 - spacing * i for i in range(20)]
    pixel, adain = recorder.timesteps(1, 1, "pixel_fusion"), recorder.timesteps(1, 1, "color_adain")
    # pixel fusion ≈ 401...201 and AdaIN ≈ 151...1: both ends within one step of the reference's.
    assert 401 - spacing < pixel[0] <= 401 and 201 <= pixel[-1] < 201 + spacing, pixel
    assert 151 - spacing < adain[0] <= 151 and adain[-1] == 1, adain
    # Fractions of the steps run (the old mapping: steps 11-15 of 20) would have given t 305...153. (For
    # AdaIN both mappings give 115...1 here: this schedule has no step between t 153 and 115.)
    assert pixel != [305, 267, 229, 191, 153]
    # Shape fusion's range (t >= 851) lies in the part denoise 0.75 skips: it never ran, as in the reference.
    assert all("shape_fusion" not in acted for _, acted in recorder.steps.values())
    assert len(recorder.timesteps(1, 1, "cross_frame_attention")) == 20


def test_at_denoise_1_the_run_is_the_reference_schedule(recordings):
    recorder = recordings[20, 1.0]
    assert recorder.timesteps(1, 1) == [951 - 50 * i for i in range(20)]
    assert recorder.timesteps(1, 1, "shape_fusion") == [951, 901, 851]
    assert recorder.timesteps(1, 1, "pixel_fusion") == [401, 351, 301, 251, 201]
    assert recorder.timesteps(1, 1, "color_adain") == [151, 101, 51, 1]
    assert recorder.timesteps(1, 1, "cross_frame_attention") == recorder.timesteps(1, 1)
