"""Sampling-side shims: sigma schedules, model family checks, VAE calls, previews."""
from __future__ import annotations

import torch

import comfy.model_management as mm
import comfy.samplers
import comfy.supported_models
import latent_preview


def schedulers() -> list[str]:
    return list(comfy.samplers.KSampler.SCHEDULERS)


def sigma_schedule(model, scheduler: str, steps: int, denoise: float) -> torch.Tensor:
    """The ``steps + 1`` sigmas KSampler would use for ``steps`` executed steps at ``denoise``.

    Like KSampler, a denoise below 1 stretches the schedule to int(steps / denoise) steps and
    runs its last ``steps``.
    """
    total = steps if denoise > 0.9999 else int(steps / denoise)
    if hasattr(comfy.samplers, "calculate_sigmas"):  # current hosts take the model_sampling object
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, total)
    else:  # the 2024 host takes the BaseModel
        sigmas = comfy.samplers.calculate_sigmas_scheduler(model.model, scheduler, total)
    return sigmas[-(steps + 1):].float().cpu()


def sigma_timesteps(model, sigmas: torch.Tensor) -> list[float]:
    """The diffusion timestep the model runs at in each step of a sigma schedule.

    Args:
        model: the ModelPatcher that samples (its model_sampling maps σ to t, 0…999 for SD1.5).
        sigmas: the ``steps + 1`` sigmas of ``sigma_schedule``; the last (where sampling ends) is no step.

    Returns:
        ``steps`` floats, t of step i = model_sampling.timestep(σ_i), as the UNet receives it.
    """
    if hasattr(model, "get_model_object"):  # current hosts: object patches included
        sampling = model.get_model_object("model_sampling")
    else:  # the 2024 host
        sampling = model.model.model_sampling
    return [float(t) for t in sampling.timestep(sigmas[:-1].float()).cpu()]


def model_family(model) -> str:
    return type(model.model.model_config).__name__


def require_sd15(model, node: str) -> None:
    """Raise ``ValueError`` unless ``model`` is a Stable Diffusion 1.5 (4-channel, eps) model."""
    config = model.model.model_config
    if not isinstance(config, comfy.supported_models.SD15) or config.unet_config.get("in_channels", 4) != 4:
        raise ValueError(f"{node} needs a Stable Diffusion 1.5 model, but this model is {model_family(model)}: "
                         "load an SD1.5 checkpoint (its LoRAs, ControlNets and FreeU work; SDXL, SD2 and "
                         "other families are not supported).")


def vae_encode(vae, frames: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] → unscaled latents [B, 4, H/8, W/8].

    The 2024 host samples the VAE posterior with torch's global generator (current hosts take its
    mean); seeding a forked generator makes the encoding repeatable without disturbing the caller's.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return vae.encode(frames.movedim(1, -1)[..., :3])


def vae_decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Unscaled latents [B, 4, h, w] → [B, 3, 8h, 8w] RGB in [0, 1] on the intermediate device."""
    images = vae.decode(latents)  # the 2024 host's decode takes no vae_options
    return images.reshape(-1, *images.shape[-3:]).movedim(-1, 1).to(mm.intermediate_device())


def previewer(model):
    """Turns an x̂0 latent into the node's live preview (None when previews are off)."""
    return latent_preview.get_previewer(model.load_device, model.model.latent_format)
