"""Which frames of a clip become key frames.

Key frames are rendered by diffusion; every other frame is propagated from its two neighbouring
key frames. Plain Python and torch: no ComfyUI import.
"""
from __future__ import annotations

from dataclasses import dataclass

import kornia
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

    def check_clip(self, frame_count: int, name: str = "frames") -> None:
        """Raise ``ValueError`` unless these indices were chosen for a clip of ``frame_count`` frames."""
        if frame_count != self.frame_count:
            raise ValueError(f"key_indices were chosen for a clip of {self.frame_count} frames but {name} hold "
                             f"{frame_count}: select the key frames on this clip.")


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


def frame_differences(frames: torch.Tensor, size: int = 512) -> torch.Tensor:
    """How much each frame differs from the one before, as FRESCO measures it.

    Frames are resized so the short side is ``size``, Gaussian-blurred (9×9, as OpenCV's σ for
    that size) and compared by mean squared error.

    Args:
        frames: [N, 3, H, W] RGB in [0, 1].

    Returns:
        [N] scores; score i compares frame i with frame i − 1 (score 0 is 0).
    """
    scale = size / min(frames.shape[-2:])
    resized = torch.nn.functional.interpolate(frames.float(), scale_factor=scale, mode="bilinear",
                                              align_corners=False, antialias=True)
    sigma = 0.3 * ((9 - 1) * 0.5 - 1) + 0.8
    blurred = kornia.filters.gaussian_blur2d(resized * 255, (9, 9), (sigma, sigma))
    scores = torch.zeros(frames.shape[0])
    scores[1:] = (blurred[1:] - blurred[:-1]).pow(2).mean(dim=(1, 2, 3)).cpu()
    return scores


def adaptive_keyframes(frames: torch.Tensor, min_interval: int, max_interval: int,
                       first_index: int = 0) -> KeyframeIndices:
    """FRESCO's key-frame selection: more key frames where the video changes more.

    The first and the last frame are keys. While two neighbouring keys are more than
    ``max_interval`` apart, the frame with the largest change (see ``frame_differences``) inside
    such a gap becomes a key, unless it is closer than ``min_interval`` to a key (then the middle of
    the widest gap is taken). ``min_interval == max_interval`` gives uniform keys.

    Args:
        frames: [N, 3, H, W] RGB in [0, 1].
    """
    count = frames.shape[0]
    if min_interval < 1:
        raise ValueError(f"min_interval must be at least 1 (got {min_interval}).")
    if max_interval < min_interval:
        raise ValueError(f"max_interval ({max_interval}) is below min_interval ({min_interval}): raise max_interval.")
    if min_interval == max_interval:
        return uniform_keyframes(count, min_interval, first_index, include_last_frame=True)
    if not 0 <= first_index < count:
        raise ValueError(f"first_index {first_index} is outside the clip's frames 0..{count - 1}: lower first_index.")
    keys = sorted({first_index, count - 1})
    scores = frame_differences(frames)
    allowed = torch.zeros(count, dtype=torch.bool)
    allowed[first_index + min_interval:count - min_interval] = True
    while True:
        gaps = [(b - a, a, b) for a, b in zip(keys, keys[1:]) if b - a > max_interval]
        if not gaps:
            return KeyframeIndices(tuple(keys), count)
        inside = torch.zeros(count, dtype=torch.bool)
        for _, a, b in gaps:
            inside[a + 1:b] = True
        candidates = scores.masked_fill(~(inside & allowed), -1.0)
        best = int(candidates.argmax())
        if candidates[best] < 0:
            _, a, b = max(gaps)
            best = (a + b) // 2
        keys = sorted(set(keys) | {best})
        allowed[max(0, best - min_interval + 1):best + min_interval] = False


def gather_keyframes(frames: torch.Tensor, keys: KeyframeIndices) -> torch.Tensor:
    """The key frames of ``frames`` ([N, H, W, C]) as a new batch [len(keys), H, W, C]."""
    keys.check_clip(frames.shape[0])
    return frames[list(keys.indices)].clone()
