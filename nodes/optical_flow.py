"""Optical flow nodes: estimate, preview, warp."""
from __future__ import annotations

from ..flow.video_flow import warp_video
from ..flow.visualize import flow_to_color
from ..host.model_folders import register_model_folders
from .flow_inputs import FLOW_INPUTS, clip_flow, flow_methods, resolve_flow
from .images import frames_to_image, image_to_frames
from .socket_types import CATEGORY, FLOW

register_model_folders()


class RerenderOpticalFlow:
    DESCRIPTION = ("Optical flow between consecutive frames, both directions, with occlusion masks. "
                   "DIS (OpenCV) needs no weights; RAFT files placed in models/optical_flow appear in the list.")
    CATEGORY = CATEGORY
    FUNCTION = "estimate"
    RETURN_TYPES = (FLOW,)
    RETURN_NAMES = ("flow",)
    OUTPUT_TOOLTIPS = ("Forward and backward flow plus occlusion masks for every pair of consecutive frames.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The clip, as one image batch (at least two frames)."}),
                "method": (flow_methods(), {
                    "default": "dis_medium",
                    "tooltip": "dis_medium: fast, no weights (default). dis_fine: more accurate, ~4x slower. "
                               "dis_fast / dis_ultrafast: quickest previews. RAFT (.pth files in "
                               "models/optical_flow, e.g. raft-sintel.pth): most accurate, runs on the GPU."}),
                "raft_iterations": ("INT", {
                    "default": 12, "min": 1, "max": 64,
                    "tooltip": "RAFT refinement iterations (ignored by DIS). More is slower and slightly more accurate."}),
                "raft_half_precision": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "Run RAFT in float16 on a CUDA GPU: faster, less memory (ignored on the CPU and by DIS)."}),
            },
        }

    def estimate(self, frames, method, raft_iterations, raft_half_precision):
        return (clip_flow(image_to_frames(frames, "frames"), method, raft_iterations, raft_half_precision),)


class RerenderFlowPreview:
    DESCRIPTION = "Colour-coded picture of a flow: hue is the direction of motion, saturation its speed."
    CATEGORY = CATEGORY
    FUNCTION = "preview"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("One picture per pair of consecutive frames.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "direction": (["forward", "backward"], {
                    "default": "forward",
                    "tooltip": "forward: motion from each frame to the next; backward: from each frame to the previous."}),
                "show_occlusions": ("BOOLEAN", {
                    "default": True, "tooltip": "Draw pixels the other frame does not show in black."}),
            },
            "optional": dict(FLOW_INPUTS),
        }

    def preview(self, direction, show_occlusions, flow=None, optical_flow=None):
        video_flow = resolve_flow(flow, optical_flow)
        vectors, occluded = ((video_flow.forward, video_flow.occluded_forward) if direction == "forward"
                             else (video_flow.backward, video_flow.occluded_backward))
        return (frames_to_image(flow_to_color(vectors, occluded if show_occlusions else None)),)


class RerenderWarp:
    DESCRIPTION = ("Move each frame's neighbour into its place along the flow, e.g. to check a flow or to carry "
                   "a stylised frame to the next one. Also outputs where the neighbour cannot show the pixel.")
    CATEGORY = CATEGORY
    FUNCTION = "warp"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("warped", "occlusion")
    OUTPUT_TOOLTIPS = (
        "Frame i replaced by its neighbour warped onto it (the first or last frame is passed through).",
        "1 where the neighbour does not show the pixel (occluded or outside the frame).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Frames of the clip the flow was computed on (or a stylised version "
                                                "of them), same count and size."}),
                "direction": (["previous_to_next", "next_to_previous"], {
                    "default": "previous_to_next",
                    "tooltip": "previous_to_next: frame i shows frame i-1 moved to it; "
                               "next_to_previous: frame i shows frame i+1 moved to it."}),
                "interpolation": (["bilinear", "nearest"], {
                    "default": "bilinear", "tooltip": "bilinear for images; nearest keeps exact pixel values."}),
            },
            "optional": dict(FLOW_INPUTS),
        }

    def warp(self, images, direction, interpolation, flow=None, optical_flow=None):
        clip = image_to_frames(images, "images", rgb_only=False)
        video_flow = resolve_flow(flow, optical_flow, clip)
        warped, occluded = warp_video(clip, video_flow, direction, interpolation)
        return frames_to_image(warped), occluded[:, 0]


NODE_CLASS_MAPPINGS = {
    "RerenderOpticalFlow": RerenderOpticalFlow,
    "RerenderFlowPreview": RerenderFlowPreview,
    "RerenderWarp": RerenderWarp,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RerenderOpticalFlow": "Rerender: Optical Flow",
    "RerenderFlowPreview": "Rerender: Flow Preview",
    "RerenderWarp": "Rerender: Warp by Flow",
}
