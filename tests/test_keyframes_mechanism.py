"""The constraints do what they are for: consecutive key frames agree along the motion.

Runs every fourth case of the key-frame consistency sweep (tests/harness/consistency_sweep.py,
all twelve in bench/keyframes_consistency.py): a fixed rule, not cases picked to pass. Rendered
with a tiny SD1.5-shaped model trained to denoise smooth textures and an SD-layout VAE built to
keep sub-8-pixel motion (see harness/denoiser.py and harness/models.py); with random weights the
model's own output would swamp any constraint.
"""
from __future__ import annotations

import statistics

import pytest

from harness.consistency_sweep import CASES, CONFIGS, case_clip, render_errors
from harness.denoiser import trained_tiny_sd15
from harness.models import smoothing_vae

MECHANISM_CASES = CASES[::4]
# bench/keyframes_consistency.py with two trainings of the denoiser (its training is not bit-reproducible)
# gave these three cases all-four ratios of 1.29, 0.84, 0.63 and 0.66, 0.88, 0.51; the whole sweep's
# medians were 0.52 and 0.62. Slow sub-pixel motion (case 0) is where the constraints can still add error,
# and where trainings differ most; the bars hold for both with room for a third.
WORST_RATIO = 2.0
MEDIAN_RATIO = 1.0


@pytest.mark.slow
def test_all_constraints_cut_the_flow_warped_error(host, pack, model_cache, shared_data):
    model, vae = trained_tiny_sd15(model_cache.root), smoothing_vae()
    configs = {name: CONFIGS[name] for name in ("none", "all four")}
    ratios = []
    for case in MECHANISM_CASES:
        clip, forward = case_clip(case, shared_data)
        errors = render_errors(host, pack, model, vae, clip, forward, configs)
        ratios.append(errors["all four"] / errors["none"])
        print(f"{case.name}: flow-warped MSE between consecutive key frames, constraints off "
              f"{errors['none']:.6f}, all four on (defaults) {errors['all four']:.6f}: ratio {ratios[-1]:.2f}")
    print(f"median ratio {statistics.median(ratios):.2f}, worst {max(ratios):.2f}")
    assert max(ratios) <= WORST_RATIO
    assert statistics.median(ratios) <= MEDIAN_RATIO
