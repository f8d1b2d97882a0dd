"""What a Rerender run holds in host RAM per loaded frame, so Load Video can stop before decoding.

ComfyUI keeps every node's output until the run ends, so the loaded frames, the optical flow
and the propagated output are all held at once. Never imports ComfyUI.
"""
from __future__ import annotations

from dataclasses import dataclass

# Bytes per pixel of one frame, for what each stage keeps for the whole run.
FRAME_BYTES = 3 * 4              # the IMAGE batch: RGB float32
FLOW_BYTES = 2 * (2 + 1) * 4     # flow both ways (2 channels) and both occlusion masks (1 channel), float32
OUTPUT_BYTES = 3 * 4             # the propagated IMAGE batch
ENCODE_BYTES = 3                 # uint8 RGB while Save Video encodes
BYTES_PER_PIXEL = FRAME_BYTES + FLOW_BYTES + OUTPUT_BYTES + ENCODE_BYTES


@dataclass(frozen=True)
class LoadEstimate:
    frames: int
    width: int
    height: int

    @property
    def bytes_per_frame(self) -> int:
        return self.width * self.height * BYTES_PER_PIXEL

    @property
    def total_bytes(self) -> int:
        return self.frames * self.bytes_per_frame

    def frames_that_fit(self, available_bytes: int) -> int:
        return int(available_bytes // self.bytes_per_frame)


def loaded_frame_count(source_frames: int, frame_load_cap: int, skip_first_frames: int, select_every_nth: int) -> int:
    """How many frames Load Video keeps of a clip of ``source_frames`` frames."""
    remaining = max(0, source_frames - skip_first_frames)
    count = -(-remaining // select_every_nth)
    return min(count, frame_load_cap) if frame_load_cap > 0 else count


def _gb(count: int) -> str:
    return f"{count / 1e9:.1f} GB"


def check_fits(estimate: LoadEstimate, available_bytes: int, name: str = "video") -> None:
    """Raise ``MemoryError`` naming the figures and the three inputs that shrink a run, when it does not fit.

    Args:
        estimate: the frames Load Video would keep and their size after resizing.
        available_bytes: the RAM available to the host now.
    """
    if estimate.total_bytes <= available_bytes:
        return
    fitting = estimate.frames_that_fit(available_bytes)
    per_pixel = (f"frames {FRAME_BYTES}, flow {FLOW_BYTES}, output {OUTPUT_BYTES}, encoding {ENCODE_BYTES} "
                 "bytes per pixel")
    raise MemoryError(
        f"{name}: {estimate.frames} frames of {estimate.width}x{estimate.height} need about "
        f"{_gb(estimate.total_bytes)} of RAM through the run ({per_pixel}), but {_gb(available_bytes)} is available. "
        f"Nothing was loaded. Load fewer frames: set frame_load_cap to {max(fitting, 0)} or less (and render the "
        f"rest in further runs with skip_first_frames), raise select_every_nth, or lower short_side.")
