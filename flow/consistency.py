"""How temporally consistent a clip is: warp error along the flow, and flicker.

Two measures per pair of consecutive frames (i, i+1), both on RGB in [0, 1]:

* **warp error**: frame i is warped onto frame i+1 with the backward flow (i+1 → i, bilinear, as
  the reference warps pixels), and the squared difference to frame i+1 is averaged over the
  colour channels and over the pixels that count: those of frame i+1 that the forward–backward
  check finds visible in frame i and whose flow lands inside frame i. This is the paper's
  Pixel-MSE (the mean squared error between consecutive output frames aligned with optical
  flow, occluded pixels excluded; spec §8.1). 0 means every visible pixel kept its colour along
  the motion.
* **flicker**: how much the average brightness of the same content changes from frame i to
  i+1, i.e. |mean over the counted pixels of Y(frame i+1) − Y(frame i warped)| with Y the
  Rec. 601 luma (the weights the DIS flow uses). Motion does not count (the frames are aligned),
  and detail that changes in both directions averages out, so what is left is the global
  brightness pumping a viewer sees as flicker. With source frames the source's own change along
  the same flow and pixels is subtracted first, |Δ_output − Δ_source|, so a scene that really gets
  brighter (a light switched on, the camera's exposure) does not count. In luma units of 0..1:
  ×255 gives 8-bit levels.

Everything here is plain torch / numpy / OpenCV; never imports ComfyUI.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .frames import check_frames, check_same_size
from .video_flow import VideoFlow
from .warp import pixel_grid, warp

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
PAIRS_PER_CHUNK = 8


def counted_pixels(backward: torch.Tensor, occluded_backward: torch.Tensor) -> torch.Tensor:
    """The pixels of frame i+1 that the measures count.

    Args:
        backward: [P, 2, H, W] float flow from frame i+1 to frame i, in pixels.
        occluded_backward: [P, 1, H, W] in {0, 1}, 1 where a pixel of frame i+1 is not visible in frame i.

    Returns:
        [P, 1, H, W] float32 in {0, 1}: 1 where the pixel is not occluded and p + backward(p) lies
        inside frame i (0 ≤ x ≤ W−1, 0 ≤ y ≤ H−1).
    """
    _, _, height, width = backward.shape
    lands = pixel_grid(height, width, backward.device) + backward.float()
    inside = ((lands[:, 0:1] >= 0) & (lands[:, 0:1] <= width - 1) & (lands[:, 1:2] >= 0)
              & (lands[:, 1:2] <= height - 1))
    return (inside & (occluded_backward.to(backward.device) < 0.5)).float()


def luma(frames: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma [N, 1, H, W] of RGB frames [N, 3, H, W] in [0, 1] (same dtype and device)."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=frames.dtype, device=frames.device).view(1, 3, 1, 1)
    return (frames * weights).sum(dim=1, keepdim=True)


def _masked_mean(values: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """Per-item mean [P] (float64) of values [P, 1, H, W] over counted pixels; NaN where none count."""
    total = counted.flatten(1).sum(dim=1).double()
    summed = (values * counted).flatten(1).sum(dim=1).double()
    return torch.where(total > 0, summed / total.clamp(min=1), torch.full_like(total, math.nan))


def aligned_previous(frames: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """Frame i warped onto frame i+1 for every pair: [P, C, H, W] from frames [P+1, C, H, W] (bilinear)."""
    return warp(frames[:-1].float(), backward.float())


def warp_errors(frames: torch.Tensor, backward: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """Warp error per pair: the mean over counted pixels and channels of (warp(frame i) − frame i+1)².

    Args:
        frames: [N, 3, H, W] RGB in [0, 1], any float dtype (computed in float32).
        backward: [N−1, 2, H, W] flow from frame i+1 to frame i, in pixels.
        counted: [N−1, 1, H, W] from ``counted_pixels``.

    Returns:
        [N−1] float64, in [0, 1]; NaN for a pair with no counted pixel.
    """
    squared = (aligned_previous(frames, backward) - frames[1:].float()).pow(2).mean(dim=1, keepdim=True)
    return _masked_mean(squared, counted.to(squared))


def brightness_changes(frames: torch.Tensor, backward: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    """Signed mean luma change of the same content per pair: mean over counted pixels of
    Y(frame i+1) − Y(warp(frame i)). Shapes as ``warp_errors``; [N−1] float64, NaN where nothing counts."""
    change = luma(frames[1:].float()) - luma(aligned_previous(frames, backward))
    return _masked_mean(change, counted.to(change))


@dataclass(frozen=True)
class Consistency:
    """The measures of a clip of N frames, one value per pair (i, i+1), all [N−1] float64.

    Attributes:
        warp_error: Pixel-MSE per pair (NaN where no pixel is visible in both frames).
        flicker: |brightness_change − source_brightness_change| (no source: |brightness_change|).
        brightness_change: signed mean luma change along the flow of the measured frames.
        source_brightness_change: the same for the source frames, or None without them.
        counted: the fraction of frame i+1's pixels that were counted.
        flow_method: how the flow was made; flow_from: which frames it was estimated from ("" if given).
    """

    warp_error: torch.Tensor
    flicker: torch.Tensor
    brightness_change: torch.Tensor
    source_brightness_change: torch.Tensor | None
    counted: torch.Tensor
    flow_method: str = ""
    flow_from: str = ""

    @property
    def pairs(self) -> int:
        return self.warp_error.shape[0]

    @property
    def mean_warp_error(self) -> float:
        """Mean over the pairs that have counted pixels (NaN if none has)."""
        return _nanmean(self.warp_error)

    @property
    def mean_flicker(self) -> float:
        return _nanmean(self.flicker)


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else math.nan


def check_clips(frames: torch.Tensor, source_frames: torch.Tensor | None = None, frames_name: str = "frames",
                source_name: str = "source_frames") -> None:
    """Raise ``ValueError`` naming the input unless ``frames`` (and ``source_frames``, if given) are RGB
    batches [N, 3, H, W] of the same N ≥ 2 and size."""
    check_frames(frames, frames_name, min_count=2)
    if source_frames is None:
        return
    check_frames(source_frames, source_name, min_count=2)
    check_same_size(source_frames, frames, source_name, frames_name)
    if source_frames.shape[0] != frames.shape[0]:
        raise ValueError(f"{source_name} hold {source_frames.shape[0]} frames but {frames_name} hold "
                         f"{frames.shape[0]}: connect the clip the frames were made from, frame for frame "
                         "(for key frames only, the source key frames).")


def measure_consistency(frames: torch.Tensor, video_flow: VideoFlow, source_frames: torch.Tensor | None = None,
                        frames_name: str = "frames", source_name: str = "source_frames",
                        flow_from: str = "") -> Consistency:
    """Warp error and flicker of a clip along its flow.

    Args:
        frames: [N, 3, H, W] RGB in [0, 1] (e.g. the rendered clip), N ≥ 2.
        video_flow: the flow of the clip (usually of the source frames), N frames of H×W.
        source_frames: optional [N, 3, H, W] RGB in [0, 1], the clip the frames were made from; its own
            brightness changes are subtracted from the flicker.
        frames_name, source_name: the input names used in error messages.
        flow_from: recorded in the result (which frames the flow was estimated from).

    Raises:
        ValueError: naming the input, when the frames are not an RGB batch of at least two frames, or
            frames, source frames and flow do not have the same count and size.
    """
    check_clips(frames, source_frames, frames_name, source_name)
    video_flow.check_matches(frames, frames_name)
    errors, changes, source_changes, fractions = [], [], [], []
    for start in range(0, frames.shape[0] - 1, PAIRS_PER_CHUNK):   # a few pairs at a time: memory stays flat
        stop = min(start + PAIRS_PER_CHUNK, frames.shape[0] - 1)
        chunk = frames[start:stop + 1].float().cpu()
        backward = video_flow.backward[start:stop].float().cpu()
        counted = counted_pixels(backward, video_flow.occluded_backward[start:stop].float().cpu())
        errors.append(warp_errors(chunk, backward, counted))
        changes.append(brightness_changes(chunk, backward, counted))
        if source_frames is not None:
            source_changes.append(brightness_changes(source_frames[start:stop + 1].float().cpu(), backward, counted))
        fractions.append(counted.flatten(1).mean(dim=1).double())
    change = torch.cat(changes)
    source_change = torch.cat(source_changes) if source_frames is not None else None
    flicker = (change - source_change).abs() if source_change is not None else change.abs()
    return Consistency(torch.cat(errors), flicker, change, source_change, torch.cat(fractions),
                       video_flow.method, flow_from)


def _number(value: float, digits: int = 6) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def format_table(result: Consistency) -> str:
    """The measures as a plain-text table: a header saying what they are, one row per pair, the means."""
    flow = result.flow_method or "given"
    if result.flow_from:
        flow += f", estimated from {result.flow_from}"
    relative = ("minus the source's own change" if result.source_brightness_change is not None
                else "no source_frames, so any change counts")
    lines = [
        f"Rerender consistency: {result.pairs + 1} frames, {result.pairs} pairs; flow: {flow}",
        "warp_error: MSE (RGB 0..1) of frame i warped onto frame i+1, over pixels visible in both (Pixel-MSE)",
        f"flicker: |mean luma change of the same content from frame i to i+1| ({relative}); 0..1, x255 = 8-bit levels",
        f"{'pair':>9}  {'warp_error':>10}  {'visible':>7}  {'flicker':>8}",
    ]
    for i in range(result.pairs):
        lines.append(f"{f'{i}-{i + 1}':>9}  {_number(float(result.warp_error[i])):>10}  "
                     f"{float(result.counted[i]):>6.1%}  {_number(float(result.flicker[i])):>8}")
    lines.append(f"{'mean':>9}  {_number(result.mean_warp_error):>10}  {'':>7}  {_number(result.mean_flicker):>8}")
    if torch.isnan(result.warp_error).any():
        lines.append("n/a: no pixel of the pair is visible in both frames (a cut, or a flow of another clip).")
    return "\n".join(lines)


PLOT_WIDTH, PLOT_HEIGHT = 768, 480
_BACKGROUND, _AXIS, _TEXT = (255, 255, 255), (90, 90, 90), (30, 30, 30)
_WARP_COLOUR, _FLICKER_COLOUR, _MEAN_COLOUR = (31, 119, 180), (230, 120, 20), (150, 150, 150)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _panel(canvas: np.ndarray, top: int, bottom: int, values: np.ndarray, colour, title: str) -> None:
    """Draw one series (one value per pair, NaN = gap) into rows top..bottom of the canvas."""
    left, right = 78, canvas.shape[1] - 20
    plot_top, plot_bottom = top + 30, bottom - 28
    finite = values[np.isfinite(values)]
    high = float(finite.max()) if finite.size else 0.0
    high = high * 1.1 if high > 0 else 1e-3
    cv2.putText(canvas, title, (left, top + 18), _FONT, 0.5, _TEXT, 1, cv2.LINE_AA)
    cv2.line(canvas, (left, plot_top), (left, plot_bottom), _AXIS, 1)
    cv2.line(canvas, (left, plot_bottom), (right, plot_bottom), _AXIS, 1)
    for fraction in (0.0, 0.5, 1.0):
        y = int(round(plot_bottom - fraction * (plot_bottom - plot_top)))
        cv2.line(canvas, (left - 4, y), (left, y), _AXIS, 1)
        cv2.putText(canvas, f"{fraction * high:.2g}", (4, y + 4), _FONT, 0.38, _TEXT, 1, cv2.LINE_AA)
    count = len(values)

    def x_of(i: int) -> int:
        return int(round(left + (i + 0.5) * (right - left) / max(count, 1)))

    def y_of(value: float) -> int:
        return int(round(plot_bottom - value / high * (plot_bottom - plot_top)))

    labels = max(1, count // 12)
    for i in range(0, count, labels):
        cv2.putText(canvas, f"{i}-{i + 1}", (x_of(i) - 10, plot_bottom + 16), _FONT, 0.35, _TEXT, 1, cv2.LINE_AA)
    if finite.size:
        mean_y = y_of(float(finite.mean()))
        for x in range(left, right, 12):   # dashed mean line
            cv2.line(canvas, (x, mean_y), (min(x + 6, right), mean_y), _MEAN_COLOUR, 1)
    previous = None
    for i, value in enumerate(values):
        if not np.isfinite(value):
            previous = None
            continue
        point = (x_of(i), y_of(float(value)))
        if previous is not None:
            cv2.line(canvas, previous, point, colour, 2, cv2.LINE_AA)
        cv2.circle(canvas, point, 3, colour, -1, cv2.LINE_AA)
        previous = point


def plot_consistency(result: Consistency, width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> np.ndarray:
    """A chart of the measures: warp error per pair above, flicker per pair below, means dashed.

    Returns:
        [height, width, 3] uint8 RGB.
    """
    canvas = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)
    middle = height // 2
    _panel(canvas, 0, middle, result.warp_error.numpy(), _WARP_COLOUR,
           f"warp error (Pixel-MSE) per frame pair - mean {_number(result.mean_warp_error)}")
    relative = " vs source" if result.source_brightness_change is not None else ""
    _panel(canvas, middle, height, result.flicker.numpy(), _FLICKER_COLOUR,
           f"flicker (mean luma change{relative}) per frame pair - mean {_number(result.mean_flicker)}")
    return canvas
