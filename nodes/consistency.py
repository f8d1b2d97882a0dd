"""RerenderConsistency: how consistent a clip is along its motion (warp error and flicker)."""
from __future__ import annotations

import torch

from ..flow.consistency import check_clips, format_table, measure_consistency, plot_consistency
from ..flow.estimators import DIS_METHODS
from .flow_inputs import FLOW_INPUTS, clip_flow, resolve_flow
from .images import image_to_frames
from .socket_types import CATEGORY

# The pack's default flow, on the CPU and without weights, when no flow is connected.
DEFAULT_FLOW_METHOD = DIS_METHODS[0]


class RerenderConsistency:
    DESCRIPTION = ("Measure how consistent a clip is from frame to frame, to compare settings on your own clip: "
                   "the warp error (the paper's Pixel-MSE: each frame moved onto the next along the optical flow, "
                   "mean squared difference over the pixels visible in both; lower is steadier) and the flicker "
                   "(how much the average brightness of the same content jumps from frame to frame, minus the "
                   "source's own change when source_frames are connected). Connect the rendered frames, and the "
                   "source frames they were made from, so the flow comes from the source as in the paper.")
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    RETURN_TYPES = ("FLOAT", "FLOAT", "STRING", "IMAGE")
    RETURN_NAMES = ("warp_error", "flicker", "table", "plot")
    OUTPUT_TOOLTIPS = (
        "Mean warp error over the frame pairs: MSE in RGB 0..1 over the pixels visible in both frames "
        "(0 = every visible pixel keeps its colour along the motion).",
        "Mean flicker over the frame pairs: |change of mean luma along the flow| (minus the source's change), "
        "0..1; x255 gives 8-bit levels.",
        "Both measures per frame pair, with the share of pixels counted, as a text table.",
        "A chart of both measures per frame pair (connect Preview Image to see it).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The clip to measure (e.g. the rendered key frames or the whole "
                                                "rendered video), at least two frames."}),
            },
            "optional": {
                "source_frames": ("IMAGE", {
                    "tooltip": "The clip the frames were made from, same count and size. The flow is estimated "
                               "from it (the motion of the input, as the paper measures), and its own brightness "
                               "changes are not counted as flicker."}),
                **FLOW_INPUTS,
            },
        }

    def measure(self, frames, source_frames=None, flow=None, optical_flow=None):
        clip = image_to_frames(frames, "frames")
        source = image_to_frames(source_frames, "source_frames") if source_frames is not None else None
        check_clips(clip, source)
        flow_from = ""
        if flow is None and optical_flow is None:
            # No flow connected: DIS on the CPU, from the source when there is one.
            flow_from = "source_frames" if source is not None else "frames"
            video_flow = clip_flow(source if source is not None else clip, DEFAULT_FLOW_METHOD)
        else:
            video_flow = resolve_flow(flow, optical_flow, source if source is not None else clip)
        result = measure_consistency(clip, video_flow, source, flow_from=flow_from)
        table = format_table(result)
        plot = torch.from_numpy(plot_consistency(result)).float().div(255.0).unsqueeze(0)
        return {"ui": {"text": [table]}, "result": (result.mean_warp_error, result.mean_flicker, table, plot)}


NODE_CLASS_MAPPINGS = {"RerenderConsistency": RerenderConsistency}
NODE_DISPLAY_NAME_MAPPINGS = {"RerenderConsistency": "Rerender: Consistency"}
