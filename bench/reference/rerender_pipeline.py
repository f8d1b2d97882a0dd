"""Rerender's propagation pipeline around the reference's own EbSynth binary: the baseline that
``bench/propagation_reference.py`` measures the pack's propagation against.

Written from the method's description (shared/research/rerender_algorithm.md §4.1–4.3), not from
Rerender's code. Per key interval (b, e):

- each non-key frame is synthesised twice by the EbSynth binary (built by ``build_ebsynth.sh``),
  forwards from key b and backwards from key e, one frame after the other, with
  ``-searchvoteiters 12 -patchmatchiters 6`` and EbSynth's other defaults, and four guides:
  colour (key input → frame j, weight 6), edge (8-bit 3×3 Laplacian of each, 0.5), temporal
  (stylised key → previous output carried to j by a nearest warp, gaps Telea-inpainted with
  radius 30, 0.5) and positional (a coordinate ramp → the ramp carried frame by frame the same
  way, 2); ``guides="color"`` keeps the colour guide alone (EbSynth's colour-guide search);
- the two results are blended as the reference does: per pixel the side whose error (EbSynth's
  own per-pixel patch error) weighted by the other side's temporal weight is lower, sticky along
  the flow, then the histogram-preserving blend in OpenCV's 8-bit Lab, mixed by the temporal
  weights i/(K−1) and re-standardised to the selected image's statistics. No Poisson step: the
  paper used none, though Rerender's command line turns it on by default (spec §4.3). Each error
  map is paired with its own frame, as the spec advises (the reference reads the backward ones in
  mirrored time order).

EbSynth runs its CPU backend (this machine has no GPU; Rerender uses CUDA where it can): the CPU
path propagates serially and ignores the stop threshold, so if anything it searches more than the
CUDA one.

The pipeline takes the same flow and occlusion masks as the pack (a ``flow.video_flow.VideoFlow``)
so the two differ only in synthesis and blending. Images are numpy uint8 BGR inside, torch float
RGB in [0, 1] at the edges. Outputs are cached under ``cache`` by a hash of everything they depend
on (frames, key styles, flow, binary, guides, this file's source, OpenCV's version), so a second
run of a bench costs nothing for the reference and an edit here never reads a stale result.
"""
from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

GUIDE_WEIGHTS = {"color": 6.0, "edge": 0.5, "temporal": 0.5, "positional": 2.0}
GUIDE_SETS = {"all": ("color", "edge", "temporal", "positional"), "color": ("color",)}
EBSYNTH_ARGUMENTS = ("-searchvoteiters", "12", "-patchmatchiters", "6", "-backend", "cpu")
INPAINT_RADIUS = 30
LAPLACIAN = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float32)


def to_bgr8(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] RGB in [0, 1] → [H, W, 3] uint8 BGR."""
    return (image.clamp(0, 1).permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8).copy()


def from_bgr8(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 BGR → [3, H, W] float32 RGB in [0, 1]."""
    return torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1).float() / 255


def edge_image(bgr: np.ndarray) -> np.ndarray:
    """The edge guide: the 3×3 Laplacian of an 8-bit image, saturated to 0..255 as filter2D does."""
    return cv2.filter2D(bgr, -1, LAPLACIAN)


def coordinate_ramp(height: int, width: int) -> np.ndarray:
    """The positional guide of a key: R = row ramp 0..255, G = column ramp 0..255, B = 0 (stored BGR)."""
    rows = np.linspace(0, 255, height).round().astype(np.uint8)[:, None].repeat(width, 1)
    columns = np.linspace(0, 255, width).round().astype(np.uint8)[None, :].repeat(height, 0)
    return np.dstack((np.zeros_like(rows), columns, rows))


def warp_nearest(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image sampled at p + flow(p) by nearest neighbour, uint8 mask of p whose sample lies outside).

    ``flow``: [H, W, 2] float32 from the frame being made to the frame ``image`` belongs to.
    """
    height, width = flow.shape[:2]
    xs = np.arange(width, dtype=np.float32)[None, :] + flow[..., 0]
    ys = np.arange(height, dtype=np.float32)[:, None] + flow[..., 1]
    outside = (xs < -0.5) | (xs > width - 0.5) | (ys < -0.5) | (ys > height - 0.5)
    moved = cv2.remap(image, xs, ys, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return moved, outside.astype(np.uint8)


def carry(image: np.ndarray, flow: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """A guide moved one frame along the flow, its occluded and out-of-frame pixels Telea-inpainted."""
    moved, outside = warp_nearest(image, flow)
    holes = np.maximum(outside, hidden.astype(np.uint8))
    return cv2.inpaint(moved, holes, INPAINT_RADIUS, cv2.INPAINT_TELEA) if holes.any() else moved


def read_error(path: Path, height: int, width: int) -> np.ndarray:
    """EbSynth-fork's ``<output>.bin``: an 8-byte element count, then float32[H·W] patch errors."""
    data = path.read_bytes()
    count = int(np.frombuffer(data[:8], dtype=np.uint64)[0])
    if count != height * width:
        raise RuntimeError(f"{path} holds {count} errors, expected {height * width}: is this the error-writing fork?")
    return np.frombuffer(data[8:], dtype=np.float32).reshape(height, width).copy()


@dataclass
class Ebsynth:
    """The reference binary; ``run`` synthesises one frame."""

    binary: Path

    def run(self, style: Path, guides: list[tuple[Path, Path, float]], output: Path) -> tuple[np.ndarray, np.ndarray]:
        command = [str(self.binary), "-style", str(style)]
        for source, target, weight in guides:
            command += ["-guide", str(source), str(target), "-weight", f"{weight:g}"]
        command += ["-output", str(output), *EBSYNTH_ARGUMENTS]
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0 or not output.exists():
            raise RuntimeError(f"EbSynth failed ({finished.returncode}): {finished.stdout[-500:]} {finished.stderr[-500:]}")
        image = cv2.imread(str(output), cv2.IMREAD_COLOR)
        return image, read_error(output.with_suffix(".bin"), *image.shape[:2])


def _write(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), image)
    return path


def run_chain(ebsynth: Ebsynth, frames: list[np.ndarray], key: int, order: list[int], key_style: np.ndarray,
              flows: dict[int, tuple[np.ndarray, np.ndarray]], guides: tuple[str, ...],
              workdir: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Propagate ``key_style`` from frame ``key`` to the frames of ``order``, one after the other.

    ``flows[j]``: (flow [H, W, 2] from frame j to the frame before it in ``order``, occluded [H, W]).
    Returns frame → (BGR output, error map).
    """
    height, width = key_style.shape[:2]
    style_path = _write(workdir / "style.png", key_style)
    key_path = _write(workdir / "key.png", frames[key])
    key_edge = _write(workdir / "key_edge.png", edge_image(frames[key]))
    ramp = coordinate_ramp(height, width)
    ramp_path = _write(workdir / "ramp.png", ramp)
    previous, positional = key_style, ramp
    results = {}
    for j in order:
        flow, hidden = flows[j]
        temporal = carry(previous, flow, hidden)
        positional = carry(positional, flow, hidden)
        pairs = {"color": (key_path, _write(workdir / "frame.png", frames[j])),
                 "edge": (key_edge, _write(workdir / "frame_edge.png", edge_image(frames[j]))),
                 "temporal": (style_path, _write(workdir / "temporal.png", temporal)),
                 "positional": (ramp_path, _write(workdir / "positional.png", positional))}
        image, error = ebsynth.run(style_path, [(*pairs[g], GUIDE_WEIGHTS[g]) for g in guides],
                                   workdir / f"out_{j:05d}.png")
        results[j] = (image, error)
        previous = image
    return results


def _lab_statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return image.mean(axis=(0, 1)), image.std(axis=(0, 1))


def histogram_blend(a: np.ndarray, b: np.ndarray, selected: np.ndarray, weight_b: float) -> np.ndarray:
    """Histogram-preserving blend of two BGR uint8 images in 8-bit Lab: each channel of A and B
    standardised, mixed (1 − weight_b) : weight_b, re-standardised to the mean and deviation of
    ``selected`` (the min-error image); back to BGR uint8."""
    lab = [cv2.cvtColor(x, cv2.COLOR_BGR2Lab).astype(np.float64) for x in (a, b, selected)]
    standard = []
    for x in lab[:2]:
        mean, std = _lab_statistics(x)
        standard.append((x - mean) / np.maximum(std, 1e-6))
    mixed = (1 - weight_b) * standard[0] + weight_b * standard[1]
    mean, std = _lab_statistics(mixed)
    target_mean, target_std = _lab_statistics(lab[2])
    result = (mixed - mean) / np.maximum(std, 1e-6) * target_std + target_mean
    return cv2.cvtColor(np.clip(np.round(result), 0, 255).astype(np.uint8), cv2.COLOR_Lab2BGR)


def blend_interval(forward: dict, backward: dict, frames: list[int], flow_to_previous: dict) -> dict[int, np.ndarray]:
    """The reference's temporal-aware blend of one interval's two propagations.

    ``frames``: b+1 … e−1 in order; ``forward``/``backward``: frame → (BGR, error) from key b / e;
    ``flow_to_previous[c]``: flow [H, W, 2] from frame c to c − 1. Returns frame → BGR uint8.
    """
    count = len(frames) + 1   # K
    blended, previous_mask = {}, None
    for i, c in enumerate(frames):
        w_b = i / (count - 1)
        w_a = 1 - w_b
        (image_a, error_a), (image_b, error_b) = forward[c], backward[c]
        take_b = (w_b * error_a >= w_a * error_b).astype(np.uint8) if w_b > 0 else np.zeros(error_a.shape, np.uint8)
        if previous_mask is not None:
            take_b = np.maximum(take_b, warp_nearest(previous_mask, flow_to_previous[c])[0])
        previous_mask = take_b
        selected = np.where(take_b[..., None].astype(bool), image_b, image_a)
        blended[c] = histogram_blend(image_a, image_b, selected, w_b)
    return blended


def _digest(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            digest.update(f"{tuple(part.shape)}{part.dtype}".encode())
            digest.update(part.numpy().tobytes())
        else:
            digest.update(str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _pipeline_digest() -> str:
    """This file's source and OpenCV's version: a cached output is stale once either changes."""
    return hashlib.sha256(Path(__file__).read_bytes() + cv2.__version__.encode()).hexdigest()


def propagate(frames: torch.Tensor, keys: list[int], styles: torch.Tensor, video_flow, binary: Path,
              guides: str = "all", cache: Path | None = None) -> tuple[torch.Tensor, float]:
    """Every frame between the first and last key, in the reference pipeline.

    Args:
        frames: [N, 3, H, W] RGB in [0, 1]; keys: sorted key indices, the first 0 and the last N − 1.
        styles: [len(keys), 3, H, W] the stylised keys, RGB in [0, 1].
        video_flow: the pack's VideoFlow for ``frames`` (consecutive flows and occlusion masks).
        binary: the EbSynth fork's executable; guides: "all" or "color".
        cache: a folder to keep and reuse results in.

    Returns:
        ([N, 3, H, W] float32 RGB in [0, 1], keys as given; seconds per frame per direction).
    """
    if keys[0] != 0 or keys[-1] != frames.shape[0] - 1:
        raise ValueError("the reference pipeline here needs keys at the clip's first and last frame")
    binary = Path(binary)
    cached = None
    if cache is not None:
        key = _digest(frames, styles, video_flow.forward, video_flow.backward, video_flow.occluded_forward,
                      video_flow.occluded_backward, keys, guides, hashlib.sha256(binary.read_bytes()).hexdigest(),
                      EBSYNTH_ARGUMENTS, _pipeline_digest())
        cached = Path(cache) / f"rerender_{guides}_{key}.pt"
        if cached.exists():
            stored = torch.load(cached)
            return stored["output"].float() / 255, stored["seconds"]
    bgr = [to_bgr8(f) for f in frames]
    numpy_flow = {name: getattr(video_flow, name).permute(0, 2, 3, 1).numpy()
                  for name in ("forward", "backward", "occluded_forward", "occluded_backward")}
    ebsynth = Ebsynth(binary)
    output = frames.clone()
    for k, style in zip(keys, styles):
        output[k] = style
    started, syntheses = time.perf_counter(), 0
    with tempfile.TemporaryDirectory(prefix="rerender-reference-") as work:
        for (b, e), (style_b, style_e) in zip(zip(keys, keys[1:]), zip(styles, styles[1:])):
            between = list(range(b + 1, e))
            if not between:
                continue
            # forwards: frame j comes from j − 1 (the backward flow j → j − 1); backwards: from j + 1
            to_previous = {j: (numpy_flow["backward"][j - 1], numpy_flow["occluded_backward"][j - 1][..., 0])
                           for j in between}
            to_next = {j: (numpy_flow["forward"][j], numpy_flow["occluded_forward"][j][..., 0]) for j in between}
            forward_dir, backward_dir = Path(work) / f"{b}_forward", Path(work) / f"{e}_backward"
            forward_dir.mkdir(), backward_dir.mkdir()
            forward = run_chain(ebsynth, bgr, b, between, to_bgr8(style_b), to_previous, GUIDE_SETS[guides], forward_dir)
            backward = run_chain(ebsynth, bgr, e, between[::-1], to_bgr8(style_e), to_next, GUIDE_SETS[guides],
                                 backward_dir)
            syntheses += 2 * len(between)
            blended = blend_interval(forward, backward, between, {j: to_previous[j][0] for j in between})
            for j, image in blended.items():
                output[j] = from_bgr8(image)
    seconds = (time.perf_counter() - started) / max(syntheses, 1)
    # 8-bit like EbSynth's outputs, and the same whether this run made the result or read it back
    output8 = (output * 255).round().to(torch.uint8)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"output": output8, "seconds": seconds}, cached.with_suffix(".partial"))
        cached.with_suffix(".partial").rename(cached)
    return output8.float() / 255, seconds
