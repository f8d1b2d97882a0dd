"""The constraints do what they are for: consecutive key frames agree along the motion.

Run with a tiny SD1.5-shaped model trained to denoise smooth textures and an SD-layout VAE
built to keep sub-8-pixel motion (see harness/denoiser.py and harness/models.py); with random
weights the model's own output would swamp any constraint.
"""
from __future__ import annotations

import pytest

from harness.denoiser import trained_tiny_sd15
from harness.models import smoothing_vae
from harness.rendering import CONSTRAINT_NODES, constrain, render, warped_mse
from harness.synthetic import shifted_clip


@pytest.mark.slow
def test_all_constraints_cut_the_flow_warped_error(host, pack, model_cache):
    model, vae = trained_tiny_sd15(model_cache.root), smoothing_vae()
    clip, forward = shifted_clip(frames=4, dx=3, dy=1, height=64, width=64, cell=16)
    settings = dict(steps=20, cfg=3.0, denoise=0.75)
    unconstrained, _, _ = render(pack, model, vae, clip, **settings)
    constrained, _, _ = render(pack, constrain(host, model, vae, *CONSTRAINT_NODES), vae, clip, **settings)
    before, after = warped_mse(pack, unconstrained, forward), warped_mse(pack, constrained, forward)
    print(f"flow-warped MSE between consecutive key frames: constraints off {before:.6f}, "
          f"all four on (defaults) {after:.6f}: {1 - after / before:.0%} lower")
    # At the reference's timesteps (pixel fusion t 381...229 at denoise 0.75, shape fusion not reached) this
    # clip shows 50 % lower error; with ranges as fractions of the executed steps (pixel fusion t 305...153,
    # shape fusion on the first three steps) it showed about 60 %, which the earlier bar of 0.5 was set on.
    assert after <= 0.6 * before
