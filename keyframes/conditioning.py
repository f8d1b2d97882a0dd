"""ControlNet conditioning for one key frame at a time.

Apply ControlNet with a batch of N control images (one per key frame) attaches the whole batch
to the conditioning; sampled one frame at a time, the host would give every frame control
image 0. Here each ControlNet of the chain is copied with its control image i for key frame i.
"""
from __future__ import annotations


def _chain(control):
    while control is not None:
        yield control
        control = control.previous_controlnet


def control_images(conditioning) -> list:
    """Every control image batch ([B, C, H, W]) attached to a CONDITIONING list."""
    return [c.cond_hint_original for _, options in conditioning
            for c in _chain(options.get("control")) if c.cond_hint_original is not None]


def check_control_images(conditioning, name: str, frame_count: int, height: int, width: int) -> None:
    """Raise ``ValueError`` unless every control image batch has 1 or ``frame_count`` images of the
    key frames' size."""
    for hint in control_images(conditioning):
        if hint.shape[0] not in (1, frame_count):
            raise ValueError(f"The ControlNet in {name} has {hint.shape[0]} control images but there are "
                             f"{frame_count} key frames: give one control image per key frame (or a single one for all).")
        if tuple(hint.shape[-2:]) != (height, width):
            raise ValueError(f"The control images in {name} are {hint.shape[-1]}x{hint.shape[-2]} but the key frames are "
                             f"{width}x{height}: make the control images from the key frames (same size).")


def _control_for_frame(control, index: int, frame_count: int):
    if control is None:
        return None
    copy = control.copy()  # a new object: the user's ControlNet is never modified
    hint = control.cond_hint_original
    if hint is not None and hint.shape[0] == frame_count and frame_count > 1:
        copy.cond_hint_original = hint[index:index + 1]
    copy.set_previous_controlnet(_control_for_frame(control.previous_controlnet, index, frame_count))
    return copy


def conditioning_for_frame(conditioning, index: int, frame_count: int):
    """A copy of ``conditioning`` whose ControlNets see only the control image of key frame ``index``."""
    out = []
    for tensor, options in conditioning:
        if options.get("control") is not None:
            options = dict(options, control=_control_for_frame(options["control"], index, frame_count))
        out.append([tensor, options])
    return out
