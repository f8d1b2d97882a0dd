"""Cross-frame attention: the attn1 patch and the features it stores between key frames.

In the decoder's self-attention layers the keys and values of the current key frame are taken
from the anchor's and the previous key frame's self-attention inputs (the normalised hidden
states before the K/V projections) at the same step, layer and CFG branch; the queries stay
the current frame's own.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .constraints import cross_frame_context
from .settings import FEATURE_STORAGE_CHOICES, CrossFrameAttention

ON_DEVICE, IN_HOST_RAM = "device", "cpu"


class StepClock:
    """The step the sampler is at and its diffusion timestep, shared with the hooks that depend on them."""

    def __init__(self):
        self.step = 0
        self.total = 1
        self.timestep = 0.0


class AttentionFeatures:
    """Self-attention inputs per (step, block, block index, CFG branch), kept in half precision.

    Each entry is [1, tokens, channels] in ``dtype``. ``storage`` says where: ``"device"`` keeps
    them where the attention ran (the model's load device); ``"cpu"`` keeps them in host RAM via
    ``to_host`` (the renderer passes the host's staging copy, page-locked on CUDA) and every read
    moves them back to the attention input's device and dtype.
    """

    def __init__(self, dtype: torch.dtype = torch.float16,
                 to_host: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.dtype = dtype
        self.storage = ON_DEVICE
        self.to_host = to_host if to_host is not None else (lambda tensor: tensor.cpu())
        self.anchor: dict[tuple, torch.Tensor] = {}
        self.previous: dict[tuple, torch.Tensor] = {}

    def keep(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` [1, tokens, C] (any device and float dtype) as stored: in ``dtype``, where ``storage`` says."""
        # Cast before the copy to host RAM: half the bytes cross the bus. Always a copy: a view would
        # keep the whole attention batch alive.
        kept = features.detach().to(self.dtype, copy=True)
        return self.to_host(kept) if self.storage == IN_HOST_RAM else kept

    def context(self, key: tuple, batch: int, like: torch.Tensor) -> torch.Tensor:
        """Keys/values source for ``key``: [batch, 2·tokens, C] on ``like``'s device, in its dtype."""
        # Each half is moved before the concatenation, so the concatenation runs on the device.
        anchor = self.anchor[key].to(device=like.device, dtype=like.dtype, non_blocking=True)
        previous = self.previous[key].to(device=like.device, dtype=like.dtype, non_blocking=True)
        return cross_frame_context(anchor, previous, batch)

    def nbytes(self) -> int:
        tensors = {id(t): t for t in list(self.anchor.values()) + list(self.previous.values())}
        return sum(t.numel() * t.element_size() for t in tensors.values())

    def clear(self) -> None:
        self.anchor.clear()
        self.previous.clear()


def _per_level(values, levels: int) -> list[int]:
    return list(values) if isinstance(values, (list, tuple)) else [values] * levels


def hooked_layers(unet_config: dict, blocks: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """The self-attention layers of the decoder blocks ``blocks``: (level, channels, transformers) per block.

    Output block i of an SD1.5-layout UNet sits at level (levels − 1) − i // (num_res_blocks + 1)
    and has model_channels · channel_mult[level] channels; its transformer depth is read from
    ``transformer_depth_output`` (the UNet pops that list from the end), one when absent.
    """
    mult = list(unet_config["channel_mult"])
    levels = len(mult)
    res_blocks = _per_level(unet_config["num_res_blocks"], levels)
    depths = list(unet_config.get("transformer_depth_output") or [])
    per_level_blocks = [res_blocks[level] + 1 for level in range(levels)]
    layers = []
    for block in blocks:
        level, first = levels - 1, 0
        while level >= 0 and block >= first + per_level_blocks[level]:
            first += per_level_blocks[level]
            level -= 1
        if level < 0:
            raise ValueError(f"Cross-frame attention hooks output block {block}, but this UNet has only "
                             f"{sum(per_level_blocks)} output blocks: use an SD1.5 model.")
        transformers = depths[len(depths) - 1 - block] if depths else 1
        layers.append((level, unet_config["model_channels"] * mult[level], transformers))
    return layers


def tokens_at_level(latent_height: int, latent_width: int, level: int) -> int:
    """Spatial tokens of a UNet level: each down-sampling (3×3, stride 2, padding 1) halves a side, rounding up."""
    for _ in range(level):
        latent_height, latent_width = -(-latent_height // 2), -(-latent_width // 2)
    return latent_height * latent_width


def feature_store_bytes(unet_config: dict, blocks: tuple[int, ...], latent_height: int, latent_width: int,
                        active_steps: int, branches: int, element_size: int) -> int:
    """Bytes of one store of attention features (the anchor's, or the previous key frame's).

    Args:
        unet_config: the model's UNet config (``model_channels``, ``channel_mult``, ``num_res_blocks``,
            optionally ``transformer_depth_output``).
        blocks: the hooked output blocks (3–11, or 6–11 when loose).
        latent_height, latent_width: the latent size (image size / 8).
        active_steps: executed steps inside the attention's step range.
        branches: CFG branches run per step (2, or 1 with cfg = 1).
        element_size: bytes per stored element (2 for half precision).
    """
    elements = sum(transformers * channels * tokens_at_level(latent_height, latent_width, level)
                   for level, channels, transformers in hooked_layers(unet_config, blocks))
    return elements * active_steps * branches * element_size


def cfg_branches(cfg: float, cfg1_optimization: bool = True) -> int:
    """CFG branches the host runs per step: 1 at cfg = 1 (it skips the negative prompt), else 2."""
    return 1 if cfg1_optimization and math.isclose(cfg, 1.0) else 2


def estimate_feature_bytes(unet_config: dict, settings: CrossFrameAttention, latent_height: int, latent_width: int,
                           timesteps: Sequence[float], cfg: float, frame_count: int, element_size: int,
                           cfg1_optimization: bool = True) -> int:
    """The most bytes the attention store holds during a render, known before sampling.

    One store while only the anchor's features are kept; two (anchor + previous) once a later key
    frame moves the "previous" reference on.

    Args:
        unet_config, latent_height, latent_width, element_size: as in ``feature_store_bytes``.
        settings: the cross-frame attention settings (blocks, step range, update interval).
        timesteps: the diffusion timestep of every executed step of a pass (the step range counts
            those it covers); cfg: the guidance scale; frame_count: key frames rendered.
        cfg1_optimization: False when the model's options disable the host's cfg = 1 shortcut.
    """
    active = sum(settings.steps.active(timestep) for timestep in timesteps)
    one = feature_store_bytes(unet_config, settings.blocks, latent_height, latent_width, active,
                              cfg_branches(cfg, cfg1_optimization), element_size)
    moves_on = any(settings.updates_previous(k) for k in range(1, frame_count))
    return one * (2 if moves_on else 1)


def choose_feature_storage(requested: str, needed_bytes: int, device_type: str, free_bytes: int,
                           usable_fraction: float = 0.8) -> str:
    """Where to keep the attention features: ``"device"`` or ``"cpu"`` (host RAM).

    Args:
        requested: the node's ``feature_storage``: ``"device"`` and ``"cpu"`` are obeyed; ``"auto"``
            keeps them on the device when ``needed_bytes`` fit into ``usable_fraction`` of
            ``free_bytes`` (after the host made room), else in host RAM. A CPU device keeps them in
            place: host RAM is all there is.
        needed_bytes: the estimate of ``estimate_feature_bytes``.
        device_type: ``torch.device.type`` of the model's load device ("cuda", "mps", "cpu", ...).
        free_bytes: memory free on that device.
    """
    if requested not in FEATURE_STORAGE_CHOICES:
        raise ValueError(f"feature_storage is {requested!r}: choose one of {', '.join(FEATURE_STORAGE_CHOICES)}.")
    if requested != "auto":
        return requested
    if device_type == "cpu":
        return ON_DEVICE
    return ON_DEVICE if needed_bytes <= free_bytes * usable_fraction else IN_HOST_RAM


RECORD_ANCHOR, ATTEND, ATTEND_AND_UPDATE, OFF = "record_anchor", "attend", "attend_and_update", "off"


class CrossFrameAttentionHook:
    """State machine behind the ``attn1_patch`` a render installs on its model clone.

    Modes: ``record_anchor`` (anchor pass: store features as anchor and previous),
    ``attend`` (use [anchor; previous] as keys/values), ``attend_and_update`` (the same, then store
    this frame's features as the new previous), ``off``.
    """

    def __init__(self, settings: CrossFrameAttention, clock: StepClock, features: AttentionFeatures):
        self.settings = settings
        self.clock = clock
        self.features = features
        self.mode = OFF

    def __call__(self, n: torch.Tensor, context: torch.Tensor, value: torch.Tensor, extra: dict):
        block = extra.get("block")
        if (self.mode == OFF or block is None or block[0] != "output" or block[1] not in self.settings.blocks
                or not self.settings.steps.active(self.clock.timestep)):
            return n, context, value
        branches = extra["cond_or_uncond"]
        per_branch = n.shape[0] // len(branches)
        keys = [(self.clock.step, block, extra.get("block_index", 0), branch) for branch in branches]
        own = [n[j * per_branch:j * per_branch + 1] for j in range(len(branches))]
        if self.mode == RECORD_ANCHOR:
            for key, features in zip(keys, own):
                self.features.anchor[key] = self.features.previous[key] = self.features.keep(features)
            return n, context, value
        attended = torch.cat([self.features.context(key, per_branch, n) for key in keys])
        if self.mode == ATTEND_AND_UPDATE:
            for key, features in zip(keys, own):
                self.features.previous[key] = self.features.keep(features)
        return n, attended, attended
