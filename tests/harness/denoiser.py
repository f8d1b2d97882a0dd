"""A tiny SD1.5-shaped model that actually denoises, for tests of temporal consistency.

With random weights the UNet's per-step output dwarfs the latent content, so no constraint can
steer it; the mechanism tests need a model that denoises the content they render. This one is
the tiny random model trained briefly (eps-prediction, the host's own ``apply_model``) on latents
of smooth random textures as the smoothing VAE encodes them. Training takes a few minutes on two
CPU cores once; the weights are cached beside the other test models.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .models import smoothing_vae, tiny_conditioning, tiny_sd15
from .synthetic import textured

TRAINING_STEPS = 600
# Bumped whenever the same steps would train another model (2: the training latents are seeded, so
# every training gives the same weights and bench and tests see the same model).
TRAINING_VERSION = 2
BATCH = 32
TEXTURES = 256


def _training_latents(vae, generator, seed: int) -> torch.Tensor:
    cells = torch.randint(8, 33, (TEXTURES,), generator=generator)
    images = torch.cat([textured(64, 64, seed=i, cell=int(cell)) for i, cell in enumerate(cells)])
    # The host's VAE samples its posterior from the global RNG: seeded here, or every training
    # would see other latents (and train another model).
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        latents = vae.encode(images.movedim(1, -1))
    return latents.clone()


def train(model, vae, steps: int = TRAINING_STEPS, seed: int = 0) -> None:
    """Train ``model``'s UNet in place to predict the noise of noised texture latents."""
    base = model.model
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode(False), torch.enable_grad():
        pool = base.process_latent_in(_training_latents(vae, generator, seed))
        contexts = torch.cat([tiny_conditioning(1)[0][0], tiny_conditioning(2)[0][0]])
        sigmas = base.model_sampling.sigmas
        optimiser = torch.optim.Adam(base.diffusion_model.parameters(), lr=1e-3)
        for _ in range(steps):
            x0 = pool[torch.randint(0, pool.shape[0], (BATCH,), generator=generator)]
            sigma = sigmas[torch.randint(0, len(sigmas), (BATCH,), generator=generator)]
            noise = torch.randn(x0.shape, generator=generator)
            noised = x0 + sigma.view(-1, 1, 1, 1) * noise
            context = contexts[torch.randint(0, 2, (BATCH,), generator=generator)]
            # The host's UNet updates some activations in place (it is written for inference);
            # saving copies for the backward pass keeps autograd correct without touching it.
            with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
                denoised = base.apply_model(noised, sigma, c_crossattn=context)
            loss = ((noised - denoised) / sigma.view(-1, 1, 1, 1) - noise).pow(2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()


def trained_tiny_sd15(cache: Path):
    """The tiny SD1.5-shaped model trained as a texture denoiser (ModelPatcher), from cache if there."""
    from safetensors.torch import load_file, save_file

    model = tiny_sd15(seed=0)
    path = cache / f"tiny-sd15-texture-denoiser-{TRAINING_STEPS}-v{TRAINING_VERSION}.safetensors"
    if path.exists():
        model.model.diffusion_model.load_state_dict(load_file(str(path)))
        return model
    train(model, smoothing_vae())
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    save_file({k: v.contiguous() for k, v in model.model.diffusion_model.state_dict().items()}, str(partial))
    os.replace(partial, path)
    return model
