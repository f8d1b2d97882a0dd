"""The key-frame sampler: deterministic DDIM (η = 0) with Rerender's hook points.

Inside one step i (the reference's order):
  1. ``begin_step``: pixel-aware fusion may blend x_t with the fused target, using the previous
     step's noise direction;
  2. the model (UNet + ControlNet, cross-frame attention inside) predicts the CFG'd x̂0;
  3. ε is taken from that *unmodified* prediction: ε = (x_t − x̂0) / σ;
  4. ``adjust_x0``: AdaIN, then shape-aware fusion, may edit x̂0 (and the anchor pass records it);
  5. x_{i+1} = x̂0 + σ_{i+1}·ε — the edited x̂0 with the original noise direction.
A post-CFG hook cannot express step 5 (stock samplers re-derive ε from the edited x̂0), hence a
sampler of our own, handed to the host as a KSAMPLER.
"""
from __future__ import annotations

from typing import Protocol

import torch


class StepHooks(Protocol):
    def begin_step(self, step: int, total: int, x: torch.Tensor, direction: torch.Tensor | None,
                   sigma: float) -> torch.Tensor: ...

    def adjust_x0(self, step: int, x0: torch.Tensor) -> torch.Tensor: ...


def ddim_sampler_function(hooks: StepHooks):
    """A k-diffusion-style sampler function ``sample(model, x, sigmas, extra_args, callback, disable)``."""

    @torch.no_grad()
    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = {} if extra_args is None else extra_args
        ones = x.new_ones([x.shape[0]])
        total = len(sigmas) - 1
        direction = None
        for step in range(total):
            sigma, sigma_next = sigmas[step], sigmas[step + 1]
            x = hooks.begin_step(step, total, x, direction, float(sigma))
            x0 = model(x, sigma * ones, **extra_args)
            eps = (x - x0) / sigma
            x0 = hooks.adjust_x0(step, x0)
            if callback is not None:
                callback({"x": x, "i": step, "sigma": sigma, "sigma_hat": sigma, "denoised": x0})
            direction = sigma_next * eps
            x = x0 + direction
        return x

    return sample
