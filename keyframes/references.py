"""References of a key frame: a rendered key frame (the anchor or the previous one) moved onto it.

Shape- and pixel-aware fusion read the reference's rendered image warped to the current key
frame, the occlusion mask of that warp and the blend masks derived from it. The flow estimator
runs where it runs (DIS on the CPU, RAFT wherever the host put it) while the rendered images
live where the VAE decoded them (the GPU under ``--gpu-only``), so every reference is moved to
the device of the image it was built from, once, here. Never imports ComfyUI.

The flow between two key frames comes from one of two places: estimated directly between them
(``DirectKeyFlow``), or composed from the clip's consecutive flows (``ComposedKeyFlow``), which
follows large motion that a direct estimate between frames far apart loses.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..flow.compose import key_to_key_flow
from ..flow.video_flow import FlowEstimator, VideoFlow, bidirectional_flow
from ..flow.warp import warp
from .constraints import blend_masks


@dataclass
class Reference:
    """A rendered reference frame seen from the current key frame. All tensors share the device of
    the rendered image they were built from.

    Attributes:
        flow: [1, 2, H, W] float32, current → reference, in pixels (float32 whatever the image's
            dtype: in half precision a 512-px coordinate is off by up to two pixels).
        occluded: [1, 1, H, W] image dtype, 1 where the reference does not show the current pixel, else 0.
        warped: [1, 3, H, W] image dtype, RGB in [0, 1]: the reference's rendered image moved onto the current frame.
        blend: [1, 1, H, W] image dtype in [0, 1]: soft pixel blend mask (1 = keep the fresh render).
        validity: [1, 1, H/8, W/8] image dtype in [0, 1]: latent validity (1 = use the reference).
    """

    flow: torch.Tensor
    occluded: torch.Tensor
    warped: torch.Tensor
    blend: torch.Tensor
    validity: torch.Tensor

    def to(self, like: torch.Tensor) -> "Reference":
        """This reference with its masks and image on ``like``'s device and dtype (the flow stays float32)."""
        return Reference(self.flow.to(device=like.device, dtype=torch.float32), self.occluded.to(like),
                         self.warped.to(like), self.blend.to(like), self.validity.to(like))


def identity_reference(image: torch.Tensor) -> Reference:
    """A frame as its own reference: zero flow, nothing occluded, everything valid.

    Args:
        image: [1, 3, H, W] float RGB in [0, 1] (H, W divisible by 8), any device.

    Returns:
        A ``Reference`` on ``image``'s device whose ``warped`` is ``image`` itself.
    """
    _, _, height, width = image.shape
    nothing = image.new_zeros(1, 1, height, width)
    return Reference(torch.zeros(1, 2, height, width, device=image.device), nothing, image, nothing,
                     image.new_ones(1, 1, height // 8, width // 8))


class DirectKeyFlow:
    """Flow between two key frames estimated directly between them, with the forward-backward
    occlusion test."""

    def __init__(self, estimator: FlowEstimator):
        self.estimator = estimator

    def check(self, frames: torch.Tensor) -> None:
        """Nothing to check: the flow is estimated on ``frames`` themselves."""

    def __call__(self, frames: torch.Tensor, current: int, reference: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(flow [1, 2, H, W] current → reference in pixels, occluded [1, 1, H, W] 1 = not seen in the
        reference) for key frames ``current`` and ``reference`` of ``frames`` [N, 3, H, W] RGB in [0, 1];
        on the estimator's output device."""
        flow, _, occluded, _ = bidirectional_flow(self.estimator, frames[current:current + 1],
                                                  frames[reference:reference + 1])
        return flow, occluded


class ComposedKeyFlow:
    """Flow between two key frames composed from the consecutive flows of the clip they come from.

    Args:
        video_flow: the clip's consecutive flows (N frames, H × W), on any device.
        key_indices: for every key frame, in order, its frame index in that clip.
        device: where the flows are chained (the compute device: a GPU chains a long clip in a
            moment, the CPU takes tens of milliseconds per frame at 512×512); default: the flow's.
    """

    def __init__(self, video_flow: VideoFlow, key_indices: tuple[int, ...] | list[int],
                 device: torch.device | str | None = None):
        if not isinstance(video_flow, VideoFlow):
            raise ValueError(f"The clip's flow must be a VideoFlow (from Rerender: Optical Flow); got "
                             f"{type(video_flow).__name__}.")
        self.video_flow, self.key_indices, self.device = video_flow, tuple(key_indices), device
        last = video_flow.frame_count - 1
        outside = [i for i in self.key_indices if not 0 <= i <= last]
        if outside:
            raise ValueError(f"key_indices contain {outside[0]}, but the flow covers a clip of "
                             f"{video_flow.frame_count} frames (0..{last}): compute the flow on the clip the key "
                             "frames were selected from.")

    def check(self, frames: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``frames`` [N, 3, H, W] can be this clip's key frames (one per
        index, at the flow's size)."""
        if frames.shape[0] != len(self.key_indices):
            raise ValueError(f"key_frames hold {frames.shape[0]} frames but key_indices name {len(self.key_indices)}: "
                             "connect the key_indices of the Select Key Frames node that gave these key frames.")
        height, width = self.video_flow.size
        if tuple(frames.shape[-2:]) != (height, width):
            raise ValueError(f"key_frames are {frames.shape[-1]}x{frames.shape[-2]} but the flow was computed on "
                             f"{width}x{height} frames: compute the flow on the clip at the key frames' size.")

    def __call__(self, frames: torch.Tensor, current: int, reference: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(flow [1, 2, H, W] float32 current → reference in pixels, occluded [1, 1, H, W] in {0, 1}, occluded
        anywhere along the way) between key frames ``current`` and ``reference``; on ``device``.
        ``frames`` is not read (the clip's flow already holds the motion)."""
        return key_to_key_flow(self.video_flow, self.key_indices[current], self.key_indices[reference], self.device)


def reference_from_flow(flow: torch.Tensor, occluded: torch.Tensor, rendered: torch.Tensor) -> Reference:
    """A rendered reference moved onto the current key frame by a flow, with its masks.

    Args:
        flow: [1, 2, H, W] float, current → reference in pixels, any device.
        occluded: [1, 1, H, W] in [0, 1], 1 where the reference does not show the current pixel, any device.
        rendered: [1, 3, H, W] float RGB in [0, 1], the reference's rendered output, any device and float dtype.

    Returns:
        A ``Reference`` on ``rendered``'s device, masks and warped image in ``rendered``'s dtype.
    """
    if rendered.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"The rendered reference is {rendered.shape[-1]}x{rendered.shape[-2]} but the key frame is "
                         f"{flow.shape[-1]}x{flow.shape[-2]}: render the references at the key frames' size.")
    # The flow's source meets the rendered image from here on: move its outputs once, to its device.
    flow = flow.to(device=rendered.device, dtype=torch.float32)
    occluded = occluded.to(rendered)
    blend, validity = blend_masks(occluded)
    return Reference(flow, occluded, warp(rendered, flow), blend, validity)


def build_reference(estimator: FlowEstimator, current: torch.Tensor, reference_frame: torch.Tensor,
                    rendered: torch.Tensor) -> Reference:
    """The reference key frame's rendered image, warped onto the current key frame, with its masks.

    The flow is estimated between the *input* frames (current → reference, and back for the
    occlusion test); it then carries the reference's *rendered* image.

    Args:
        estimator: optical flow between RGB frames (any device; its flows may come back on another).
        current: [1, 3, H, W] float RGB in [0, 1], the current key frame as given (any device).
        reference_frame: [1, 3, H, W] float RGB in [0, 1], the reference key frame as given (on ``current``'s
            device).
        rendered: [1, 3, H, W] float RGB in [0, 1], the reference's rendered output, any device and float dtype.

    Returns:
        A ``Reference`` on ``rendered``'s device, masks and warped image in ``rendered``'s dtype.
    """
    flow, _, occluded, _ = bidirectional_flow(estimator, current, reference_frame)
    return reference_from_flow(flow, occluded, rendered)
