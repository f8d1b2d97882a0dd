"""Running auxiliary torch models (the optical-flow network) on the host's compute device."""
from __future__ import annotations

from contextlib import contextmanager

import torch

import comfy.model_management as mm


def compute_device() -> torch.device:
    return mm.get_torch_device()


def offload_device() -> torch.device:
    return mm.unet_offload_device()


@contextmanager
def on_compute_device(module: torch.nn.Module):
    """Move ``module`` to the compute device for the block, making room first; move it back after."""
    device = compute_device()
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    mm.free_memory(size * 3, device)  # weights plus room for activations
    module.to(device)
    try:
        yield device
    finally:
        module.to(offload_device())
        mm.soft_empty_cache()
