"""What nodes that take optical flow share: the method list, estimators, the flow sockets."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..flow.conversion import video_flow_from_optical_flow
from ..flow.estimators import DIS_METHODS, is_dis_method, make_dis
from ..flow.raft import RaftFlow, bytes_per_pair, load_raft
from ..flow.video_flow import VideoFlow, estimate_video_flow
from ..host.devices import on_compute_device
from ..host.memory import is_accelerator, items_that_fit
from ..host.model_folders import OPTICAL_FLOW as OPTICAL_FLOW_FOLDER
from ..host.model_folders import model_files, model_path
from ..host.progress import progress_reporter
from .socket_types import FLOW, OPTICAL_FLOW

FLOW_INPUTS = {
    "flow": (FLOW, {"tooltip": "Flow from the Rerender Optical Flow node."}),
    "optical_flow": (OPTICAL_FLOW, {
        "tooltip": "Or: OPTICAL_FLOW from comfyui_controlnet_aux's Unimatch Optical Flow node. It holds one "
                   "direction; which one is detected from the frames when they are at hand, otherwise "
                   "Unimatch's default (forward) is assumed; the other direction is derived by inversion."}),
}

MOST_RAFT_PAIRS = 8
_raft_models: dict[tuple[str, int], object] = {}


def flow_methods() -> list[str]:
    """DIS presets first (no weights needed), then every RAFT file in models/optical_flow."""
    return list(DIS_METHODS) + model_files(OPTICAL_FLOW_FOLDER)


def cached_raft(name: str):
    """Load a RAFT file of models/optical_flow once per file version (kept on the CPU)."""
    path = model_path(OPTICAL_FLOW_FOLDER, name)
    if path is None:
        raise ValueError(f"Unknown optical flow method '{name}': choose one of {', '.join(flow_methods())} "
                         "(RAFT weight files go into models/optical_flow).")
    key = (path, Path(path).stat().st_mtime_ns)
    if key not in _raft_models:
        _raft_models.clear()  # one RAFT in memory at a time
        _raft_models[key] = load_raft(path)
    return _raft_models[key]


@contextmanager
def flow_estimator(method: str, raft_iterations: int = 12, raft_half_precision: bool = False):
    """The estimator for a method of ``flow_methods()``; RAFT runs on the host's compute device."""
    if is_dis_method(method):
        yield make_dis(method)
        return
    model = cached_raft(method)
    with on_compute_device(model) as device:
        half = raft_half_precision and device.type == "cuda"

        def pairs_per_batch(height: int, width: int) -> int:
            # RAFT's correlation volumes grow with the square of the pixel count: 8 pairs at 720p
            # would need about 12 GB, so the batch comes from the estimate and the free memory.
            if not is_accelerator(device):
                return 1
            return items_that_fit(bytes_per_pair(height, width, half), device, most=MOST_RAFT_PAIRS)

        yield RaftFlow(model, raft_half_precision, raft_iterations, pairs_per_batch)


def clip_flow(clip, method: str, raft_iterations: int = 12, raft_half_precision: bool = False) -> VideoFlow:
    """Flow over a clip ([N, 3, H, W] in [0, 1]) with a method of ``flow_methods()``, with a progress bar."""
    with flow_estimator(method, raft_iterations, raft_half_precision) as estimator:
        return estimate_video_flow(clip, estimator, method, on_progress=progress_reporter(max(clip.shape[0] - 1, 1)))


def resolve_flow(flow: VideoFlow | None, optical_flow=None, frames=None) -> VideoFlow:
    """The VideoFlow from whichever of the two flow sockets is connected.

    Args:
        frames: optional [N, 3, H, W] frames of the clip, used to tell an OPTICAL_FLOW's direction.
    """
    if flow is not None and optical_flow is not None:
        raise ValueError("Both flow and optical_flow are connected: connect only one of them.")
    if flow is not None:
        if not isinstance(flow, VideoFlow):
            raise ValueError(f"flow must come from the Rerender Optical Flow node; got {type(flow).__name__}.")
        return flow
    if optical_flow is not None:
        rgb = frames if frames is not None and frames.shape[1] == 3 else None
        return video_flow_from_optical_flow(optical_flow, rgb)
    raise ValueError("No flow connected: connect the flow input (Rerender Optical Flow) "
                     "or optical_flow (Unimatch Optical Flow).")
