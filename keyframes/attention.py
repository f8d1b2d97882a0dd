"""Cross-frame attention: the attn1 patch and the features it stores between key frames.

In the decoder's self-attention layers the keys and values of the current key frame are taken
from the anchor's and the previous key frame's self-attention inputs (the normalised hidden
states before the K/V projections) at the same step, layer and CFG branch; the queries stay
the current frame's own.
"""
from __future__ import annotations

import torch

from .constraints import cross_frame_context
from .settings import CrossFrameAttention


class StepClock:
    """The step the sampler is at, shared with the hooks that depend on it."""

    def __init__(self):
        self.step = 0
        self.total = 1


class AttentionFeatures:
    """Self-attention inputs per (step, block, block index, CFG branch), kept in half precision."""

    def __init__(self, dtype: torch.dtype = torch.float16):
        self.dtype = dtype
        self.anchor: dict[tuple, torch.Tensor] = {}
        self.previous: dict[tuple, torch.Tensor] = {}

    def nbytes(self) -> int:
        tensors = {id(t): t for t in list(self.anchor.values()) + list(self.previous.values())}
        return sum(t.numel() * t.element_size() for t in tensors.values())

    def clear(self) -> None:
        self.anchor.clear()
        self.previous.clear()


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
                or not self.settings.steps.active(self.clock.step, self.clock.total)):
            return n, context, value
        branches = extra["cond_or_uncond"]
        per_branch = n.shape[0] // len(branches)
        keys = [(self.clock.step, block, extra.get("block_index", 0), branch) for branch in branches]
        own = [n[j * per_branch:j * per_branch + 1].detach().to(self.features.dtype) for j in range(len(branches))]
        if self.mode == RECORD_ANCHOR:
            for key, features in zip(keys, own):
                self.features.anchor[key] = self.features.previous[key] = features
            return n, context, value
        attended = torch.cat([cross_frame_context(self.features.anchor[key], self.features.previous[key], per_branch)
                              for key in keys]).to(n)
        if self.mode == ATTEND_AND_UPDATE:
            for key, features in zip(keys, own):
                self.features.previous[key] = features
        return n, attended, attended
