"""Memory budgets: the one place where the pack asks the host for room and sizes its work.

Before a large allocation the pack tells the host what it needs
(``comfy.model_management.free_memory``), so models loaded earlier are offloaded as the host
decides, and then sizes its batches from what is really free. Everything here takes a device and
byte counts; the estimates themselves live beside the code they describe (plain modules).
"""
from __future__ import annotations

import torch

import comfy.model_management as mm

# Part of the free memory a batch may plan to use: allocator fragmentation, cuDNN/cuFFT workspaces
# and the host's own inference reserve take the rest.
USABLE_FRACTION = 0.8


def is_accelerator(device: torch.device) -> bool:
    """True for a GPU-like device (CUDA, ROCm, MPS, XPU...), whose memory the host manages."""
    return torch.device(device).type != "cpu"


def free_bytes(device: torch.device) -> int:
    """Memory the host says is free on ``device`` (for the CPU: available RAM)."""
    return int(mm.get_free_memory(torch.device(device)))


def make_room(needed_bytes: int, device: torch.device) -> int:
    """Ask the host to offload models until ``needed_bytes`` are free on ``device``; return what is free then.

    On the CPU nothing is offloaded (models are offloaded *to* the CPU); the available RAM is returned.
    """
    device = torch.device(device)
    if is_accelerator(device):
        mm.free_memory(int(needed_bytes), device)
    return free_bytes(device)


def items_that_fit(bytes_per_item: int, device: torch.device, fixed_bytes: int = 0, most: int | None = None) -> int:
    """How many items of ``bytes_per_item`` to process at once on ``device``, at least 1.

    Makes room for ``most`` items (or one when ``most`` is None) plus ``fixed_bytes`` first, then
    counts how many fit into the usable part of the free memory.
    """
    wanted = most if most is not None else 1
    free = make_room(fixed_bytes + bytes_per_item * wanted, device)
    fitting = int((free * USABLE_FRACTION - fixed_bytes) // max(bytes_per_item, 1))
    if most is not None:
        fitting = min(fitting, most)
    return max(1, fitting)


def fits(needed_bytes: int, device: torch.device) -> bool:
    """Whether ``needed_bytes`` fit into the usable free memory of ``device`` after making room."""
    return make_room(needed_bytes, device) * USABLE_FRACTION >= needed_bytes


def release_cache() -> None:
    """Hand cached but unused device memory back (the host's ``soft_empty_cache``)."""
    mm.soft_empty_cache()


def staging_tensor(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` in host RAM, page-locked when ``device`` is CUDA so copies to it can overlap compute."""
    tensor = tensor.cpu()
    if torch.device(device).type == "cuda" and not tensor.is_pinned():
        return tensor.pin_memory()
    return tensor


def available_ram() -> int:
    """Host RAM available now, in bytes (what ComfyUI reports for the CPU device)."""
    return free_bytes(torch.device("cpu"))
