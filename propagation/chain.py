"""Propagating one stylised key frame along the clip, one frame at a time (one direction).

For each frame j after the key (in the chain's order) the target guides are: colour (frame j),
edge (its Laplacian), temporal (the previous output carried to j by the flow, gaps filled) and
positional (the key's coordinate ramp carried frame by frame). The search starts from the previous
frame's NNF carried by the flow, and the positional guide's coordinates are offered as a candidate.
Several chains (directions, key intervals) advance together as one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .guides import GuideWeights, carry, coordinate_ramp, edge_guide
from .synthesis import SynthesisSettings, synthesize


def positional_to_nnf(positional: torch.Tensor) -> torch.Tensor:
    """Source pixel coordinates [B, 2, H, W] (int64) from a positional guide in 0..255 units."""
    _, _, height, width = positional.shape
    scale = torch.tensor([(width - 1) / 255.0, (height - 1) / 255.0], device=positional.device).view(1, 2, 1, 1)
    return (positional * scale).round().long()


@dataclass
class ChainState:
    """What one chain carries from frame to frame; tensors have a leading batch of 1."""

    key_style: torch.Tensor     # [1, 3, H, W] stylised key, 0..255
    source_guides: torch.Tensor  # [1, 11, H, W]
    output: torch.Tensor        # [1, 3, H, W] latest output, 0..255
    positional: torch.Tensor    # [1, 2, H, W]
    nnf: torch.Tensor           # [1, 2, H, W]


def start_chain(key_frame: torch.Tensor, key_style: torch.Tensor) -> ChainState:
    """A chain at its key frame. ``key_frame``/``key_style``: [1, 3, H, W], 0..255."""
    _, _, height, width = key_frame.shape
    ramp = coordinate_ramp(1, height, width, key_frame.device)
    source_guides = torch.cat((key_frame, edge_guide(key_frame), key_style, ramp), dim=1)
    return ChainState(key_style, source_guides, key_style, ramp, positional_to_nnf(ramp))


def advance(chains: list[ChainState], frames: torch.Tensor, flows: torch.Tensor, occluded: torch.Tensor,
            settings: SynthesisSettings, weights: GuideWeights = GuideWeights()) -> tuple[torch.Tensor, torch.Tensor]:
    """Move every chain one frame on, as one batch.

    Args:
        chains: their states (updated in place).
        frames: [B, 3, H, W] the next frame of each chain, 0..255.
        flows: [B, 2, H, W] flow from that frame to the chain's previous frame.
        occluded: [B, 1, H, W] pixels of that frame the previous frame does not show.

    Returns:
        (outputs [B, 3, H, W] in 0..255, errors [B, 1, H, W]).
    """
    outputs = torch.cat([c.output for c in chains])
    positional = carry(torch.cat([c.positional for c in chains]), flows, occluded)
    temporal = carry(outputs, flows, occluded)
    previous_nnf = torch.cat([c.nnf for c in chains]).float()
    positional_nnf = positional_to_nnf(positional)
    carried = carry(previous_nnf, flows, occluded).round().long()
    target_guides = torch.cat((frames, edge_guide(frames), temporal, positional), dim=1)
    result = synthesize(torch.cat([c.key_style for c in chains]), torch.cat([c.source_guides for c in chains]),
                        target_guides, weights.per_channel(frames.device), weights.style, init_nnf=carried,
                        candidates=(positional_nnf,), settings=settings)
    for i, chain in enumerate(chains):
        chain.output = result.style[i:i + 1]
        chain.positional = positional[i:i + 1]
        chain.nnf = result.nnf[i:i + 1]
    return result.style, result.error
