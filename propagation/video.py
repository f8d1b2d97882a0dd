"""Propagating rendered key frames to every frame of a clip.

Between two key frames b < e every frame is synthesised twice, forwards from b and backwards from
e, and the two are blended (blending.py). Frames before the first key are propagated backwards
from it, frames after the last key forwards; the key frames themselves are kept as rendered.
A texture the keys share at fixed places on the screen (screen_texture.py) is taken out of the keys
before they are propagated and put back on every propagated frame.

Memory: the clip, its flows, the stored backward results and the output stay in host RAM; only
what the current step needs moves to the compute device (the frames and flows of the chains being
advanced, the chains' own state), so device memory depends on the frame size and
``chains_per_batch``, never on the clip's length (``device_bytes_per_chain`` estimates it). Per
interval the backward chain runs first and keeps its results (8-bit colour and the error map, in
host RAM), then the forward chain runs and each frame is blended and written as soon as it is
made. Chains of several intervals advance together as one batch, which is what keeps a GPU busy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..flow.video_flow import VideoFlow
from ..video.keyframe_selection import validate_keyframe_indices
from .blending import blend_pair, blend_weights, error_weights, selection
from .chain import ChainBatch, ChainState, start_chain
from .guides import GuideWeights
from .screen_texture import estimate_screen_texture
from .synthesis import SynthesisSettings


@dataclass(frozen=True)
class PropagationSettings:
    # Eight descriptor dimensions match sixteen in quality on video frames (measured on wolf.mp4) at less cost.
    synthesis: SynthesisSettings = SynthesisSettings(descriptor_dims=8)
    weights: GuideWeights = GuideWeights()
    poisson: bool = False
    chains_per_batch: int = 1
    # Sharpness k of the error-weighted blend (blending.error_weights); 0: the temporal weights alone
    # (the reference; bench/propagation.py --styles prints both). 0.5 keeps k = 1's PSNR and is
    # steadier along the motion (bench/propagation_settings.py '{"error_blend": 1}'; README).
    error_blend: float = 0.5
    # Strength of the screen-fixed texture separation (screen_texture.py) in [0, 1]; 0: off.
    screen_texture: float = 1.0
    # Share of the key carried along the flow in each propagated frame, where the key shows it
    # (chain.py); 0: the synthesis alone, as EbSynth. README "The carried key" measures it.
    warp_share: float = 0.5


@dataclass
class _Chain:
    """A chain job: frames it visits in order, and how it reaches each from the previous one."""

    key: int
    frames: list[int]
    forward: bool          # True: b → b+1 → ...; False: e → e−1 → ...
    state: ChainState | None = None


GUIDE_CHANNELS = 11   # colour 3, edge 3, temporal 3, positional 2
STYLE_CHANNELS = 3
TEMPORARIES_MARGIN = 1.5


def device_bytes_per_chain(height: int, width: int, settings: PropagationSettings = PropagationSettings()) -> int:
    """Upper estimate of the compute-device memory one chain needs at ``height`` × ``width``.

    Counted from what is alive at the peak, the finest level of a synthesis (float32 unless noted):
    the chain's source pyramid (style + guides and d-dimensional descriptors, ~4/3 for the coarser
    levels), the target guides and their descriptors, the NNF (int64 ×2), its candidate and index
    tensors, error, total and occupancy planes, the gathered descriptor differences of one candidate
    test, the vote's accumulators, the carried guides and the chain's state, plus the blend of a
    frame (Lab images, masks), times a margin for the short-lived temporaries of padding, casting and
    concatenation not listed. A test measures the per-pixel growth of one chain on the CPU (about
    780 B per pixel between 192x256 and 384x512) and checks that the estimate covers it.
    """
    synthesis = settings.synthesis
    channels = GUIDE_CHANNELS + STYLE_CHANNELS
    dims = synthesis.descriptor_dims
    pyramid = 4 / 3
    floats_per_pixel = (
        pyramid * (channels + dims)        # source pyramid: features and descriptors
        + 2 * (GUIDE_CHANNELS + channels)  # target guides, their weighted and padded copies
        + 2 * dims                         # target descriptors and one gathered difference
        + 2 * 2 * 2 + 2 * 2                # NNF and candidate (int64 ×2), clamped candidate
        + 3 * 2                            # flat indices (int64), of current and candidate
        + 8                                # error, total, occupancy, counts, masks, penalty
        + 2 * STYLE_CHANNELS               # vote accumulator and target style
        + 3 * (STYLE_CHANNELS + 2 + 2)     # carried temporal/positional/NNF guides and their fills
        + 2 * (3 + 2 + 1)                  # key style, flow to the key, where the key shows;
                                           # and their carried copies while the output is mixed
        + 4 * 3 + 4                        # blending: Lab A, B, selection, blend; masks
    )
    return int(floats_per_pixel * 4 * TEMPORARIES_MARGIN * height * width)


def check_keyframes(frames: torch.Tensor, keys: list[int], styles: torch.Tensor) -> None:
    """Raise ``ValueError`` (naming the input and the fix) unless key frames and indices fit the clip."""
    count = frames.shape[0]
    if styles.shape[0] != len(keys):
        raise ValueError(f"key_frames hold {styles.shape[0]} images but key_indices name {len(keys)} frames: "
                         "give one rendered key frame per index.")
    if tuple(styles.shape[-2:]) != tuple(frames.shape[-2:]):
        raise ValueError(f"key_frames are {styles.shape[-1]}x{styles.shape[-2]} but the frames are "
                         f"{frames.shape[-1]}x{frames.shape[-2]}: render the key frames at the frames' size "
                         "(or resize them).")
    validate_keyframe_indices(list(keys), count, "key_indices")


def _jobs(keys: list[int], count: int) -> list[tuple[_Chain | None, _Chain | None]]:
    """(backward chain, forward chain) per stretch between keys; either may be None at the clip's ends."""
    jobs = []
    if keys[0] > 0:
        jobs.append((_Chain(keys[0], list(range(keys[0] - 1, -1, -1)), forward=False), None))
    for b, e in zip(keys, keys[1:]):
        if e - b > 1:
            jobs.append((_Chain(e, list(range(e - 1, b, -1)), forward=False),
                         _Chain(b, list(range(b + 1, e)), forward=True)))
    if keys[-1] < count - 1:
        jobs.append((None, _Chain(keys[-1], list(range(keys[-1] + 1, count)), forward=True)))
    return jobs


def propagate_video(frames: torch.Tensor, keys: list[int], styles: torch.Tensor, video_flow: VideoFlow,
                    settings: PropagationSettings = PropagationSettings(),
                    on_progress: Callable[[int, int], None] | None = None,
                    on_frame: Callable[[int, torch.Tensor], None] | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Every frame of the clip in the style of its neighbouring key frames.

    Args:
        frames: [N, 3, H, W] the clip, RGB in [0, 1], any float dtype; best in host RAM (pinned
            for CUDA), since only the frames being worked on are moved to ``device``.
        keys: sorted, distinct key frame indices.
        styles: [len(keys), 3, H, W] the rendered key frames, RGB in [0, 1].
        video_flow: flows between consecutive frames of this clip (any device).
        on_progress: called with (frame syntheses done, total); may raise to stop.
        on_frame: called with (index, [3, H, W] image) as soon as a frame is final.
        device: where the synthesis runs (default: the frames' device).

    Returns:
        [N, 3, H, W] float32 RGB in [0, 1] on the CPU: a channels-last buffer seen channels-first,
        so ``output.movedim(1, -1)`` is already a contiguous ComfyUI IMAGE.
    """
    check_keyframes(frames, keys, styles)
    video_flow.check_matches(frames, "frames")
    count = frames.shape[0]
    device = torch.device(device) if device is not None else frames.device
    output = torch.empty(count, *frames.shape[-2:], 3).permute(0, 3, 1, 2)

    def on_device(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(device, non_blocking=True)

    # The chains carry the keys without the texture that stays on the screen; it is put back on
    # every propagated frame (the keys themselves are kept as rendered).
    texture_on_device = on_device(estimate_screen_texture(styles, settings.screen_texture))
    texture = texture_on_device.cpu()
    textured = bool((texture != 1).any())

    def finish(index: int, image: torch.Tensor, propagated: bool = True) -> None:
        output[index] = (image * texture[0] if propagated and textured else image).clamp(0, 1)
        if on_frame is not None:
            on_frame(index, output[index])

    for key, style in zip(keys, styles):
        finish(key, style.cpu(), propagated=False)
    style_of = dict(zip(keys, styles))

    def chain_style(key: int) -> torch.Tensor:
        """[1, 3, H, W] float32 0..255 on the device: the key as its chains carry it (made when a
        chain starts, so no second copy of all keys is held)."""
        style = on_device(style_of[key][None]).float()
        return (style / texture_on_device).clamp(0, 1) * 255 if textured else style * 255

    jobs = _jobs(keys, count)
    total = sum(len(c.frames) for job in jobs for c in job if c is not None)
    done = 0

    def step(chains: list[_Chain], position: int):
        """Advance every chain that still has a frame at ``position``; yield (chain, frame, image, error)."""
        nonlocal done
        active = [c for c in chains if position < len(c.frames)]
        if not active:
            return []
        targets = [c.frames[position] for c in active]
        for chain in active:
            if chain.state is None:
                chain.state = start_chain(on_device(frames[chain.key:chain.key + 1]).float() * 255,
                                          chain_style(chain.key),
                                          settings.synthesis, settings.weights)
        ids = tuple(id(c) for c in active)
        if batches.get("ids") != ids:   # stack the source pyramids again only when a chain ends
            batches.update(ids=ids, batch=ChainBatch([c.state for c in active]))
        flows, occluded = [], []
        for chain, target in zip(active, targets):
            if chain.forward:   # from frame target to target − 1
                flows.append(video_flow.backward[target - 1:target])
                occluded.append(video_flow.occluded_backward[target - 1:target])
            else:               # from frame target to target + 1
                flows.append(video_flow.forward[target:target + 1])
                occluded.append(video_flow.occluded_forward[target:target + 1])
        images, errors = batches["batch"].advance(on_device(torch.stack([frames[t] for t in targets])).float() * 255,
                                                  on_device(torch.cat(flows)), on_device(torch.cat(occluded)),
                                                  settings.synthesis, settings.warp_share)
        done += len(active)
        if on_progress is not None:
            on_progress(done, total)
        return [(c, t, images[i:i + 1], errors[i:i + 1]) for i, (c, t) in enumerate(zip(active, targets))]

    batches: dict = {}

    def release(chains: list[_Chain]) -> None:
        """Drop what finished chains hold (their source pyramids above all), or memory grows with the clip."""
        for chain in chains:
            chain.state = None
        batches.clear()

    batch = max(1, settings.chains_per_batch)
    for start in range(0, len(jobs), batch):
        group = jobs[start:start + batch]
        backward = [b for b, _ in group if b is not None]
        forward = [f for _, f in group if f is not None]
        stored = {}
        for position in range(max((len(c.frames) for c in backward), default=0)):
            for chain, frame, image, error in step(backward, position):
                if any(f is not None and frame in f.frames for _, f in group):
                    # kept in host RAM, so device memory does not grow with the number of intervals
                    stored[frame] = (image.clamp(0, 255).round().to(torch.uint8).cpu(), error.cpu())
                else:   # before the first key: one direction only
                    finish(frame, image[0].cpu() / 255)
        release(backward)
        selections: dict[int, torch.Tensor] = {}
        for position in range(max((len(c.frames) for c in forward), default=0)):
            for chain, frame, image, error in step(forward, position):
                if frame not in stored:   # after the last key: one direction only
                    finish(frame, image[0].cpu() / 255)
                    continue
                end = chain.frames[-1] + 1
                w_a, w_b = blend_weights(frame, chain.key, end)
                other, other_error = stored.pop(frame)
                previous = selections.get(chain.key)
                flow = on_device(video_flow.backward[frame - 1:frame]) if previous is not None else None
                choose_b = selection(error, on_device(other_error), w_a, w_b, previous, flow)
                selections[chain.key] = choose_b
                if settings.error_blend > 0:
                    w_a, w_b = error_weights(error, on_device(other_error), w_a, w_b, settings.error_blend)
                blended = blend_pair((image / 255).clamp(0, 1), on_device(other).float() / 255, choose_b, w_a, w_b,
                                     settings.poisson)
                finish(frame, blended[0].cpu())
        release(forward)
    return output
