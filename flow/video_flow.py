"""Optical flow over a whole clip: the value that travels on the ``RERENDER_FLOW`` socket."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from .frames import check_frames, check_same_size
from .occlusion import forward_backward_occlusion
from .warp import warp

Progress = Callable[[int, int], None]


class FlowEstimator(Protocol):
    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Source→target flow [B, 2, H, W] in pixels for RGB frames [B, 3, H, W] in [0, 1]."""


@dataclass(frozen=True)
class VideoFlow:
    """Flows and occlusion masks between consecutive frames of a clip of N frames.

    Attributes:
        forward: [N−1, 2, H, W], flow from frame i to frame i+1 (pixels).
        backward: [N−1, 2, H, W], flow from frame i+1 to frame i (pixels).
        occluded_forward: [N−1, 1, H, W], 1 where a pixel of frame i is not visible in frame i+1.
        occluded_backward: [N−1, 1, H, W], 1 where a pixel of frame i+1 is not visible in frame i.
        method: how the flow was made (e.g. "dis_medium", "raft-sintel.pth", "unimatch").
    """

    forward: torch.Tensor
    backward: torch.Tensor
    occluded_forward: torch.Tensor
    occluded_backward: torch.Tensor
    method: str

    def __post_init__(self) -> None:
        pairs, _, height, width = self.forward.shape
        for name in ("backward", "occluded_forward", "occluded_backward"):
            tensor = getattr(self, name)
            if tensor.shape[0] != pairs or tensor.shape[-2:] != (height, width):
                raise ValueError(f"VideoFlow.{name} {tuple(tensor.shape)} does not match forward {tuple(self.forward.shape)}")

    @property
    def frame_count(self) -> int:
        return self.forward.shape[0] + 1

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)"""
        return tuple(self.forward.shape[-2:])

    def check_matches(self, frames: torch.Tensor, name: str) -> None:
        """Raise ``ValueError`` unless ``frames`` [N, C, H, W] is the clip this flow was made for."""
        if frames.shape[0] != self.frame_count:
            raise ValueError(f"{name} hold {frames.shape[0]} frames but the flow was computed for "
                             f"{self.frame_count}: compute the flow on the same clip.")
        if tuple(frames.shape[-2:]) != self.size:
            raise ValueError(f"{name} are {frames.shape[-1]}x{frames.shape[-2]} but the flow is "
                             f"{self.size[1]}x{self.size[0]}: compute the flow at the frames' size.")


def bidirectional_flow(estimator: FlowEstimator, a: torch.Tensor, b: torch.Tensor):
    """Flows both ways between paired frames, with their occlusion masks.

    Args:
        a, b: [B, 3, H, W] RGB in [0, 1], frame a[i] paired with b[i].

    Returns:
        (a→b flow, b→a flow, occluded in a, occluded in b): [B, 2, H, W], [B, 2, H, W],
        [B, 1, H, W], [B, 1, H, W].
    """
    check_same_size(a, b, "source frames", "target frames")
    both = estimator(torch.cat((a, b)), torch.cat((b, a)))
    forward, backward = both.split(a.shape[0])
    occluded_a, occluded_b = forward_backward_occlusion(forward, backward)
    return forward, backward, occluded_a, occluded_b


def estimate_video_flow(frames: torch.Tensor, estimator: FlowEstimator, method: str,
                        pairs_per_call: int = 4, on_progress: Progress | None = None) -> VideoFlow:
    """Forward and backward flow with occlusion masks for every consecutive pair of a clip.

    Args:
        frames: [N, 3, H, W] RGB in [0, 1], N ≥ 2.
        estimator: a callable flow estimator (``DisFlow``, ``RaftFlow``).
        method: recorded in the result.
        pairs_per_call: consecutive pairs estimated per estimator call.
        on_progress: called with (pairs done, pairs total) after each call; may raise to stop.
    """
    check_frames(frames, "frames", min_count=2)
    total = frames.shape[0] - 1
    parts = []
    for start in range(0, total, pairs_per_call):
        stop = min(start + pairs_per_call, total)
        parts.append(bidirectional_flow(estimator, frames[start:stop], frames[start + 1:stop + 1]))
        if on_progress is not None:
            on_progress(stop, total)
    forward, backward, occluded_forward, occluded_backward = (torch.cat(p) for p in zip(*parts))
    return VideoFlow(forward, backward, occluded_forward, occluded_backward, method)


def warp_video(images: torch.Tensor, video_flow: VideoFlow, direction: str = "previous_to_next",
               mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Move each frame's neighbour into its place along the flow.

    Args:
        images: [N, C, H, W] frames of the clip the flow belongs to (the input frames, or a
            stylised version of them).
        direction: ``"previous_to_next"``: output i is frame i−1 warped to frame i (frame 0 is
            returned as is); ``"next_to_previous"``: output i is frame i+1 warped to frame i
            (the last frame is returned as is).
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        (warped [N, C, H, W], occluded [N, 1, H, W]) where occluded marks pixels the neighbour
        does not show (zero for the frame returned as is).
    """
    video_flow.check_matches(images, "images")
    warped, occluded = images.clone(), torch.zeros_like(images[:, :1])
    if direction == "previous_to_next":
        warped[1:] = warp(images[:-1], video_flow.backward.to(images), mode)
        occluded[1:] = video_flow.occluded_backward.to(images)
    elif direction == "next_to_previous":
        warped[:-1] = warp(images[1:], video_flow.forward.to(images), mode)
        occluded[:-1] = video_flow.occluded_forward.to(images)
    else:
        raise ValueError(f"Unknown warp direction '{direction}': use previous_to_next or next_to_previous.")
    return warped, occluded
