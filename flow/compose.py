"""Flow between distant frames (key frame to key frame) composed from a clip's consecutive flows.

A direct estimate between frames far apart has to find large displacements and suffers from
everything that changed in between; chaining the small, reliable steps f_{k→k+1} instead gives

    F_{a→b}(x) = f_{a→a+1}(x) + F_{a+1→b}(x + f_{a→a+1}(x)).

Expanded, this tracks each pixel of frame a along the clip: with p_a = x and
p_{k+1} = p_k + f_{k→k+1}(p_k), the composed flow is F_{a→b}(x) = p_b − x. Each step's raw flow is
sampled once, bilinearly, at the tracked position, instead of resampling an already composed
field again at every step (which would blur it more with every frame).

Flows follow the convention of :mod:`.warp` (a flow on frame a's pixel grid points to where each
pixel lies in frame b, ``warp(frame_b, F_ab)`` aligns frame b with frame a). Masks are float
[B, 1, H, W] with 1 = occluded, as in :mod:`.occlusion`.
"""
from __future__ import annotations

import torch

from .video_flow import VideoFlow
from .warp import pixel_grid, warp

# A bilinearly sampled binary mask above one half: the tracked point is nearer occluded pixels
# than visible ones.
OCCLUDED_SHARE = 0.5


def _check_chain(steps: torch.Tensor, occluded: torch.Tensor | None) -> None:
    if not isinstance(steps, torch.Tensor) or steps.ndim != 4 or steps.shape[1] != 2:
        shape = tuple(steps.shape) if isinstance(steps, torch.Tensor) else type(steps).__name__
        raise ValueError(f"compose_flows: steps must be flows [steps, 2, height, width]; got {shape}. "
                         "Stack the consecutive flows along the first axis.")
    if steps.shape[0] == 0:
        raise ValueError("compose_flows: steps is empty: give at least one flow "
                         "(from a frame to itself the flow is zero).")
    if occluded is None:
        return
    expected = (steps.shape[0], 1, *steps.shape[-2:])
    if not isinstance(occluded, torch.Tensor) or tuple(occluded.shape) != expected:
        shape = tuple(occluded.shape) if isinstance(occluded, torch.Tensor) else type(occluded).__name__
        raise ValueError(f"compose_flows: occluded must be masks {expected}, one per step of steps "
                         f"{tuple(steps.shape)}; got {shape}. Pass the occlusion masks of the same flows.")


def outside_frame(positions: torch.Tensor) -> torch.Tensor:
    """1 where pixel positions [B, 2, H, W] (x, y) lie outside the pixel centres' rectangle, where
    bilinear sampling would read the zero padding instead of the frame: [B, 1, H, W] float."""
    _, _, height, width = positions.shape
    x, y = positions[:, 0:1], positions[:, 1:2]
    outside = (x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)
    return outside.float()


def compose_flows(steps: torch.Tensor, occluded: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain consecutive flows into one flow from the chain's first frame to its last.

    Pixels of the first frame are tracked through the steps: each step's flow (and occlusion
    mask) is sampled bilinearly where the pixel has got to. A pixel is occluded in the result
    when any step's mask marks it occluded at its tracked position (sampled value above 0.5), or
    when it leaves the frame at any step (its position leaves [0, W − 1] × [0, H − 1]); its flow
    is still followed, but no longer means anything.

    Args:
        steps: [S, 2, H, W] float flows in pixels, S ≥ 1, in the order of travel: ``steps[k]`` is
            the flow from the chain's k-th frame to its (k+1)-th, on the k-th frame's pixel grid.
            For a → b with a < b these are the forward flows f_{a→a+1}, …, f_{b−1→b}; with a > b the
            backward flows f_{a→a−1}, …, f_{b+1→b}. Any float dtype, any device.
        occluded: optional [S, 1, H, W] masks in [0, 1] (1 = occluded), ``occluded[k]`` marking the
            pixels of the k-th frame not visible in the (k+1)-th (as ``forward_backward_occlusion``
            gives them); on any device. Without it only leaving the frame counts as occluded.

    Returns:
        (flow [1, 2, H, W] float32 in pixels from the first frame to the last,
        occluded [1, 1, H, W] float32 in {0, 1}), both on ``steps``' device.

    Raises:
        ValueError: ``steps`` is not [S, 2, H, W] with S ≥ 1, or ``occluded`` does not match it.
    """
    _check_chain(steps, occluded)
    steps = steps.float()
    _, _, height, width = steps.shape
    grid = pixel_grid(height, width, steps.device)
    composed = torch.zeros_like(steps[:1])
    lost = torch.zeros_like(steps[:1, :1])
    for k in range(steps.shape[0]):
        # composed = p_k − x, so warp samples step k at the tracked position p_k.
        if occluded is not None:
            step_occluded = warp(occluded[k:k + 1].to(steps.device).float(), composed)
            lost = torch.maximum(lost, (step_occluded > OCCLUDED_SHARE).float())
        composed = composed + warp(steps[k:k + 1], composed)
        lost = torch.maximum(lost, outside_frame(grid + composed))
    return composed, lost


def _check_frame_index(index, name: str, frame_count: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(f"key_to_key_flow: {name} must be a frame index (int); got {type(index).__name__}.")
    if not 0 <= index < frame_count:
        raise ValueError(f"key_to_key_flow: {name} frame {index} is outside the clip: the flow covers "
                         f"{frame_count} frames, so use an index from 0 to {frame_count - 1}.")


def key_to_key_flow(video_flow: VideoFlow, source: int, target: int,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow from frame ``source`` to frame ``target`` of a clip, composed from its consecutive flows.

    ``source < target`` chains the forward flows and their masks, ``source > target`` the backward
    ones; ``source == target`` is the zero flow with nothing occluded. See ``compose_flows``.

    Args:
        video_flow: the clip's consecutive flows (N frames, H × W), on any device.
        source, target: frame indices in 0 … N − 1.
        device: where to compose (only the steps needed are moved there); default: where
            ``video_flow``'s tensors are. A chain of hundreds of steps takes seconds on the CPU.

    Returns:
        (flow [1, 2, H, W] float32 in pixels on frame ``source``'s grid, pointing into frame
        ``target``; occluded [1, 1, H, W] float32 in {0, 1}, 1 where a pixel of ``source`` is not
        visible in ``target``), on ``device``.

    Raises:
        ValueError: an index that is not an int in 0 … N − 1.
    """
    _check_frame_index(source, "source", video_flow.frame_count)
    _check_frame_index(target, "target", video_flow.frame_count)
    device = video_flow.forward.device if device is None else device
    if source == target:
        zeros = torch.zeros(1, 2, *video_flow.size, device=device)
        return zeros, zeros[:, :1].clone()
    if source < target:
        return compose_flows(video_flow.forward[source:target].to(device),
                             video_flow.occluded_forward[source:target].to(device))
    # backward[k] is the flow k+1 → k: travelling from source down to target takes
    # backward[source − 1], backward[source − 2], …, backward[target].
    return compose_flows(video_flow.backward[target:source].flip(0).to(device),
                         video_flow.occluded_backward[target:source].flip(0).to(device))
