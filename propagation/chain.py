"""Propagating one stylised key frame along the clip, one frame at a time (one direction).

For each frame j after the key (in the chain's order) the target guides are: colour (frame j),
edge (its Laplacian), temporal (the previous output carried to j by the flow, gaps filled; weight 0
by default, the carried key below keeps the frames steady instead) and positional (the key's coordinate ramp carried frame by frame). The search starts from the previous
frame's NNF carried by the flow, and the positional guide's coordinates are offered as a candidate.
Several chains (directions, key intervals) advance together as one batch. Everything a chain holds
lives on the device of its key frame; the source pyramid (key style and guides) is built once.

Each output is the synthesis mixed with the key itself carried along the flow (``warp_share`` of
it, where the key shows the pixel): a patch synthesis re-picks and re-averages patches at every
frame and the warp never does, so their errors are largely independent and their mean is nearer
the truth than either (bench/propagation_settings.py '{"warp_share": 0}' compares). The chain
tracks where each pixel of its latest frame lies in the key (the consecutive flows composed one
step at a time, bilinearly) and how surely the key shows it (``carry_to_key``). The error maps
returned beside the mixed outputs are the synthesis's own patch errors: the blend judges the two
sides by how well their patches matched.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..flow.compose import outside_frame
from ..flow.warp import pixel_grid, warp
from .guides import GuideWeights, carry, coordinate_ramp, edge_guide
from .synthesis import SourcePyramid, SynthesisSettings, synthesize_from


def positional_to_nnf(positional: torch.Tensor) -> torch.Tensor:
    """Source pixel coordinates [B, 2, H, W] (int64) from a positional guide in 0..255 units."""
    _, _, height, width = positional.shape
    scaled = torch.stack((positional[:, 0] * ((width - 1) / 255.0), positional[:, 1] * ((height - 1) / 255.0)), dim=1)
    return scaled.round().long()


@dataclass
class ChainState:
    """What one chain carries from frame to frame; tensors have a leading batch of 1, float32."""

    source: SourcePyramid       # the key's style and guides at every level (never changes)
    output: torch.Tensor        # [1, 3, H, W] latest output, 0..255
    positional: torch.Tensor    # [1, 2, H, W]
    nnf: torch.Tensor           # [1, 2, H, W]
    key_style: torch.Tensor     # [1, 3, H, W] the key's style, 0..255
    to_key: torch.Tensor        # [1, 2, H, W] flow from the latest frame to the key (pixels)
    key_shows: torch.Tensor     # [1, 1, H, W] in [0, 1], how surely the key shows the latest frame's pixel


def start_chain(key_frame: torch.Tensor, key_style: torch.Tensor, settings: SynthesisSettings = SynthesisSettings(),
                weights: GuideWeights = GuideWeights()) -> ChainState:
    """A chain at its key frame.

    Args:
        key_frame, key_style: [1, 3, H, W] float, 0..255, on the device the chain will run on.
    """
    key_frame, key_style = key_frame.float(), key_style.float()
    _, _, height, width = key_frame.shape
    ramp = coordinate_ramp(1, height, width, key_frame.device)
    source_guides = torch.cat((key_frame, edge_guide(key_frame), key_style, ramp), dim=1)
    source = SourcePyramid.build(key_style, source_guides, weights.per_channel(key_frame.device), (height, width),
                                 weights.style, settings)
    return ChainState(source, key_style, ramp, positional_to_nnf(ramp), key_style,
                      torch.zeros(1, 2, height, width, device=key_frame.device),
                      torch.ones(1, 1, height, width, device=key_frame.device))


# Below this share of shown pixels under a sample, the flow to the key is carried unweighted.
SHOWN_FLOOR = 1e-3


def carry_to_key(to_key: torch.Tensor, key_shows: torch.Tensor, flows: torch.Tensor,
                 occluded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the flow from a chain's frame to its key, and of where the key shows the frame.

    F_{t→key}(x) = f_{t→t−1}(x) + F_{t−1→key}(x + f_{t→t−1}(x)). The second term is read bilinearly
    from the shown pixels only (weighted by ``key_shows``), so neither the frame's zero padding nor
    pixels the key never showed pull it. The key shows a pixel by the share of shown pixels its
    sample reads (soft, so a sub-pixel motion wears an edge away gradually instead of by whole
    pixels or not at all), times its visibility in the previous frame, and only while the key
    position it lands on lies inside the key frame.

    Args:
        to_key: [B, 2, H, W] float32, flow from the previous frame to the key (pixels).
        key_shows: [B, 1, H, W] float32 in [0, 1] for the previous frame.
        flows: [B, 2, H, W] flow from the new frame to the previous one.
        occluded: [B, 1, H, W] pixels of the new frame the previous one does not show (1).

    Returns:
        (to_key, key_shows) for the new frame, like the inputs.
    """
    _, _, height, width = flows.shape
    reached = warp(key_shows, flows)
    weighted = warp(to_key * key_shows, flows) / reached.clamp_min(SHOWN_FLOOR)
    to_key = flows + torch.where(reached > SHOWN_FLOOR, weighted, warp(to_key, flows))
    landed_outside = outside_frame(pixel_grid(height, width, flows.device) + to_key)
    key_shows = reached.clamp(0, 1) * (1 - occluded.float()) * (1 - landed_outside)
    return to_key, key_shows


def mix_carried_key(synthesis: torch.Tensor, carried_key: torch.Tensor, key_shows: torch.Tensor,
                    warp_share: float) -> torch.Tensor:
    """A chain's output: the synthesis with ``warp_share`` of the carried key where the key shows the pixel.

    Args:
        synthesis, carried_key: [B, 3, H, W] float, same units (0..255 in the chains).
        key_shows: [B, 1, H, W] in [0, 1] (``carry_to_key``).
        warp_share: in [0, 1].
    """
    return synthesis + warp_share * key_shows * (carried_key - synthesis)


class ChainBatch:
    """Chains that advance together; their source pyramids are stacked once for the batch."""

    def __init__(self, chains: list[ChainState]):
        self.chains = chains
        self.source = SourcePyramid.stack([c.source for c in chains])

    def advance(self, frames: torch.Tensor, flows: torch.Tensor, occluded: torch.Tensor,
                settings: SynthesisSettings, warp_share: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Move every chain one frame on (their states are updated).

        Args:
            frames: [B, 3, H, W] the next frame of each chain, 0..255, on the chains' device.
            flows: [B, 2, H, W] flow from that frame to the chain's previous frame.
            occluded: [B, 1, H, W] pixels of that frame the previous frame does not show.
            warp_share: in [0, 1], how much of the key carried along the flow each output takes
                where the key shows the pixel (0: the synthesis alone, EbSynth's output, and the
                flow to the key is not tracked); keep it the same along a chain.

        Returns:
            (outputs [B, 3, H, W] in 0..255, errors [B, 1, H, W]), float32 on the chains' device.
        """
        chains = self.chains
        frames = frames.float()
        outputs = torch.cat([c.output for c in chains])
        positional = carry(torch.cat([c.positional for c in chains]), flows, occluded)
        temporal = carry(outputs, flows, occluded)
        previous_nnf = torch.cat([c.nnf for c in chains]).float()
        positional_nnf = positional_to_nnf(positional)
        carried = carry(previous_nnf, flows, occluded).round().long()
        target_guides = torch.cat((frames, edge_guide(frames), temporal, positional), dim=1)
        result = synthesize_from(self.source, target_guides, init_nnf=carried, candidates=(positional_nnf,),
                                 settings=settings)
        output = result.style
        if warp_share > 0:   # the carried key is tracked only for a chain that mixes it in
            to_key, key_shows = carry_to_key(torch.cat([c.to_key for c in chains]),
                                             torch.cat([c.key_shows for c in chains]), flows, occluded)
            carried_key = warp(torch.cat([c.key_style for c in chains]), to_key)
            output = mix_carried_key(output, carried_key, key_shows, warp_share)
            for i, chain in enumerate(chains):
                chain.to_key = to_key[i:i + 1]
                chain.key_shows = key_shows[i:i + 1]
        for i, chain in enumerate(chains):
            chain.output = output[i:i + 1]
            chain.positional = positional[i:i + 1]
            chain.nnf = result.nnf[i:i + 1]
        return output, result.error
