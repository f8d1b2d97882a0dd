"""How well a propagation fills in a clip: PSNR by distance to the keys and on disoccluded pixels.

Shared by ``bench/propagation.py --styles``, ``bench/propagation_settings.py`` and
``tests/test_propagation_video.py``, so they score alike; the test's first intervals (wolf.mp4:0,
woman-running.mp4:0) are the "defaults" rows of ``bench/propagation_settings.py``.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .media import psnr, read_video, stylize, stylize_with_grain

KEY_SPACING = 10
# A style tied to the scene, and the same with a paper grain that stays on the screen.
STYLES = {"stylization": stylize, "stylization × grain": stylize_with_grain}


def key_interval_clip(path, limit: int, start: int = 0, stride: int = 1) -> torch.Tensor:
    """Frames ``start``, ``start + stride``, … of a video, at most ``limit``, as many as make whole
    key intervals (a stride above 1 makes the motion between frames that many times larger).

    With (N − 1) a multiple of KEY_SPACING the last frame is a key, so every other frame lies
    between two keys and gets both directions.
    """
    frames = read_video(path, limit=start + (limit - 1) * stride + 1)[start::stride]
    if frames.shape[0] < KEY_SPACING + 1:
        raise ValueError(f"{path} holds {frames.shape[0]} frames from frame {start} (every {stride}): a key interval needs "
                         f"{KEY_SPACING + 1}; start earlier.")
    return frames[:(frames.shape[0] - 1) // KEY_SPACING * KEY_SPACING + 1]


def disoccluded_pixels(video_flow, keys: list[int], key_to_key_flow) -> torch.Tensor:
    """[N, 1, H, W] bool: pixels of a non-key frame visible in neither its previous nor its next key.

    Visibility follows the clip's consecutive flows composed from the frame to each key
    (``key_to_key_flow``: the pack's flow.compose.key_to_key_flow); key frames are all False.
    Every non-key frame must lie between two keys.
    """
    disoccluded = torch.zeros(video_flow.frame_count, 1, *video_flow.size, dtype=torch.bool)
    for j in range(video_flow.frame_count):
        if j in keys:
            continue
        previous, following = max(k for k in keys if k < j), min(k for k in keys if k > j)
        _, hidden_in_previous = key_to_key_flow(video_flow, j, previous)
        _, hidden_in_following = key_to_key_flow(video_flow, j, following)
        disoccluded[j] = (hidden_in_previous.bool() & hidden_in_following.bool())[0].cpu()
    return disoccluded


def style_scores(output: torch.Tensor, truth: torch.Tensor, keys: list[int], disoccluded: torch.Tensor) -> dict:
    """PSNR (dB) of ``output`` and of copying the nearest key (the earlier one on a tie) against
    ``truth``, both [N, 3, H, W] in [0, 1]: the mean over the non-key frames, the output's mean
    next to a key (distance 1) and halfway between keys (distance KEY_SPACING / 2), and, pooled
    over all non-key frames, on the ``disoccluded`` pixels ([N, 1, H, W] bool), with their share of
    the non-key pixels."""
    count = truth.shape[0]
    non_keys = [j for j in range(count) if j not in keys]
    distance = {j: min(abs(j - k) for k in keys) for j in non_keys}
    copied = truth[[min(keys, key=lambda k: abs(k - j)) for j in range(count)]]

    def mean_psnr(result: torch.Tensor, indices: list[int]) -> float:
        return float(np.mean([psnr(result[j], truth[j]) for j in indices]))

    pixels = disoccluded.expand_as(truth)
    return {"pack": mean_psnr(output, non_keys), "copy": mean_psnr(copied, non_keys),
            "next_to_key": mean_psnr(output, [j for j in non_keys if distance[j] == 1]),
            "farthest": mean_psnr(output, [j for j in non_keys if distance[j] == KEY_SPACING // 2]),
            "pack_disoccluded": psnr(output[pixels], truth[pixels]),
            "copy_disoccluded": psnr(copied[pixels], truth[pixels]),
            "disoccluded_share": disoccluded[non_keys].float().mean().item()}


def carry_keys_along_flow(truth: torch.Tensor, keys: list[int], video_flow, key_to_key_flow, warp) -> torch.Tensor:
    """The truth's key frames carried along the clip's flow to every frame between them: what a
    propagation that moved each key exactly with the estimated motion, and never resynthesised it,
    would output. A baseline for how much of the fall away from the keys the style itself makes
    (the truth is stylised one frame at a time, so it changes along the motion too) and the flow's
    error adds.

    ``truth``: [N, 3, H, W] in [0, 1]; every non-key frame lies between two keys. Each non-key pixel
    takes the nearer key (the earlier on a tie) warped along ``key_to_key_flow`` (flow.compose)
    where that key shows it, else the other key where it shows it, else the nearer key's pixel
    unmoved (as copying the nearest key does). ``warp``: flow.warp.warp. Returns [N, 3, H, W].
    """
    carried = truth.clone()
    for j in range(truth.shape[0]):
        if j in keys:
            continue
        previous, following = max(k for k in keys if k < j), min(k for k in keys if k > j)
        near, far = (previous, following) if j - previous <= following - j else (following, previous)
        result = truth[near:near + 1].clone()
        for key in (far, near):   # the nearer key is written last, so it wins where both show a pixel
            flow, hidden = key_to_key_flow(video_flow, j, key)
            warped = warp(truth[key:key + 1], flow.to(truth.device))
            result = torch.where(hidden.to(truth.device).bool(), result, warped)
        carried[j] = result[0]
    return carried


def steadiness(images: torch.Tensor, video_flow, consistency) -> float:
    """Mean PSNR (dB) of each frame against the frame before it carried along the clip's flow, on
    the pixels the earlier frame shows: how steady ``images`` ([N, 3, H, W] in [0, 1]) are along
    the motion, from the pack's own warp error (``consistency``: flow.consistency, Pixel-MSE per
    pair). Flicker and texture that swims lower it; it cannot tell a frozen wrong output from a
    right one, so it is read beside PSNR against the truth and beside the truth's own figure."""
    warp_error = consistency.measure_consistency(images, video_flow).warp_error
    return float(np.nanmean(10 * np.log10(1 / warp_error.numpy())))


def measure_settings(frames: torch.Tensor, configs: dict, pack_modules: dict):
    """Propagate ``frames`` (keys every KEY_SPACING from 0 to the last frame) in every style with
    every setting of ``configs`` (name → PropagationSettings, or another propagation: a callable
    ``(frames, keys, key_styles, video_flow) → (output, seconds per frame per direction)``, such as
    bench/reference's pipeline), on the CPU with DIS medium flow.

    ``pack_modules``: the pack's ``video`` (propagation.video), ``video_flow``, ``dis``, ``compose``,
    ``consistency`` and ``warp`` modules. Yields (style name, setting name, ``style_scores`` dict with
    ``steadiness``, the truth's own ``truth_steadiness`` and the keys carried along the flow
    (``carry_keys_along_flow``: ``carried`` mean, ``carried_next_to_key``, ``carried_farthest``)
    added, seconds per frame per direction) as each is measured; every non-key frame gets both
    directions.
    """
    video, compose, video_flow = pack_modules["video"], pack_modules["compose"], pack_modules["video_flow"]
    consistency = pack_modules["consistency"]
    keys = list(range(0, frames.shape[0], KEY_SPACING))
    flow = video_flow.estimate_video_flow(frames, pack_modules["dis"].DisFlow("medium"), "dis_medium")
    disoccluded = disoccluded_pixels(flow, keys, compose.key_to_key_flow)
    syntheses = 2 * (frames.shape[0] - len(keys))
    for style_name, style in STYLES.items():
        truth = style(frames)
        truth_steadiness = steadiness(truth, flow, consistency)
        carried = style_scores(carry_keys_along_flow(truth, keys, flow, compose.key_to_key_flow, pack_modules["warp"].warp),
                               truth, keys, disoccluded)
        for name, settings in configs.items():
            if callable(settings):
                output, seconds = settings(frames, keys, truth[keys], flow)
            else:
                started = time.perf_counter()
                output = video.propagate_video(frames, keys, truth[keys], flow, settings)
                seconds = (time.perf_counter() - started) / syntheses
            scores = style_scores(output, truth, keys, disoccluded)
            scores |= {"steadiness": steadiness(output, flow, consistency), "truth_steadiness": truth_steadiness,
                       "carried_next_to_key": carried["next_to_key"], "carried_farthest": carried["farthest"],
                       "carried": carried["pack"]}
            yield style_name, name, scores, seconds
