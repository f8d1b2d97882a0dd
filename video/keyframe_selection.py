"""Which frames of a clip become key frames.

Key frames are rendered by diffusion; every other frame is propagated from its two neighbouring
key frames. Plain Python and torch: no ComfyUI import.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KeyframeIndices:
    """The key frames of one clip: sorted, distinct frame indices into a clip of ``frame_count``.

    This is the value carried by the ``RERENDER_KEYFRAME_INDICES`` socket.
    """

    indices: tuple[int, ...]
    frame_count: int

    def __post_init__(self) -> None:
        validate_keyframe_indices(list(self.indices), self.frame_count)

    def __len__(self) -> int:
        return len(self.indices)

    def as_text(self) -> str:
        return ",".join(str(i) for i in self.indices)


def validate_keyframe_indices(indices: list[int], frame_count: int, name: str = "key frame indices") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``indices`` are sorted, distinct and in range."""
    if frame_count < 1:
        raise ValueError(f"The clip has no frames: {name} need a clip with at least one frame.")
    if not indices:
        raise ValueError(f"No key frames: {name} must name at least one frame.")
    for i in indices:
        if not 0 <= i < frame_count:
            raise ValueError(
                f"{name} contain {i}, outside the clip's frames 0..{frame_count - 1}: "
                "use indices that exist in the clip.")
    for a, b in zip(indices, indices[1:]):
        if b == a:
            raise ValueError(f"{name} contain {a} twice: list each key frame once.")
        if b < a:
            raise ValueError(f"{name} are not sorted ({a} before {b}): list them in increasing order.")


def uniform_keyframes(frame_count: int, interval: int, first_index: int = 0,
                      include_last_frame: bool = True) -> KeyframeIndices:
    """Every ``interval``-th frame from ``first_index``, as the reference's uniform interval K.

    Args:
        frame_count: frames in the clip (≥ 1).
        interval: K, frames between consecutive key frames (1 ≤ K < frame_count).
        first_index: the first key frame (the anchor); frames before it are propagated backwards.
        include_last_frame: also make the clip's last frame a key frame, so that the tail is
            bracketed by two key frames instead of being propagated in one direction only.
    """
    if frame_count < 1:
        raise ValueError("frames: the clip is empty; connect a batch with at least one frame.")
    if interval < 1:
        raise ValueError(f"interval must be at least 1 (got {interval}).")
    if not 0 <= first_index < frame_count:
        raise ValueError(
            f"first_index {first_index} is outside the clip's frames 0..{frame_count - 1}: "
            "lower first_index.")
    if frame_count > 1 and interval >= frame_count:
        raise ValueError(
            f"interval {interval} is longer than the clip ({frame_count} frames): "
            f"use an interval of at most {frame_count - 1}.")
    indices = list(range(first_index, frame_count, interval))
    if include_last_frame and indices[-1] != frame_count - 1:
        indices.append(frame_count - 1)
    return KeyframeIndices(tuple(indices), frame_count)


def gather_keyframes(frames: torch.Tensor, keys: KeyframeIndices) -> torch.Tensor:
    """The key frames of ``frames`` ([N, H, W, C]) as a new batch [len(keys), H, W, C]."""
    if frames.shape[0] != keys.frame_count:
        raise ValueError(
            f"The key frame indices were chosen for a clip of {keys.frame_count} frames but the "
            f"frames batch has {frames.shape[0]}: select the key frames on this clip.")
    return frames[list(keys.indices)].clone()
