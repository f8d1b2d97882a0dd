"""RerenderSelectKeyframes: pick the key frames of a clip."""
from __future__ import annotations

from ..video.keyframe_selection import adaptive_keyframes, gather_keyframes, uniform_keyframes
from .images import image_to_frames
from .socket_types import CATEGORY, KEYFRAME_INDICES


class RerenderSelectKeyframes:
    DESCRIPTION = ("Pick the key frames of a clip. Key frames are rendered with Stable Diffusion; "
                   "every other frame is propagated from its two neighbouring key frames.")
    CATEGORY = CATEGORY
    FUNCTION = "select"
    RETURN_TYPES = ("IMAGE", KEYFRAME_INDICES, "STRING")
    RETURN_NAMES = ("key_frames", "key_indices", "key_indices_text")
    OUTPUT_TOOLTIPS = (
        "The key frames, in clip order; the first one is the anchor.",
        "Which frames are key frames; connect it to the propagation node.",
        "The same indices as comma-separated text, for display or reuse.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "Every frame of the clip, as one image batch."}),
                "method": (["uniform", "adaptive"], {
                    "default": "uniform",
                    "tooltip": "uniform: every interval-th frame. adaptive (FRESCO): more key frames where the "
                               "video changes more, between min_interval and max_interval apart; the first and "
                               "last frames are keys."}),
                "interval": ("INT", {
                    "default": 10, "min": 1, "max": 10000,
                    "tooltip": "K: frames between consecutive key frames. The paper recommends 5 to 20; "
                               "smaller follows fast motion better but renders more key frames."}),
                "first_index": ("INT", {
                    "default": 0, "min": 0, "max": 100000,
                    "tooltip": "The first key frame (the anchor that fixes the look). "
                               "Frames before it are propagated backwards from it."}),
                "include_last_frame": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "uniform: also make the last frame a key frame, so the end of the clip lies between "
                               "two key frames instead of being propagated from one side only."}),
                "min_interval": ("INT", {"default": 5, "min": 1, "max": 10000,
                                         "tooltip": "adaptive: key frames are at least this many frames apart."}),
                "max_interval": ("INT", {"default": 20, "min": 1, "max": 10000,
                                         "tooltip": "adaptive: key frames are at most this many frames apart."}),
            },
        }

    def select(self, frames, method, interval, first_index, include_last_frame, min_interval, max_interval):
        if method == "adaptive":
            keys = adaptive_keyframes(image_to_frames(frames, "frames"), min_interval, max_interval, first_index)
        elif method == "uniform":
            keys = uniform_keyframes(frames.shape[0], interval, first_index, include_last_frame)
        else:
            raise ValueError(f"Unknown method '{method}': use uniform or adaptive.")
        text = keys.as_text()
        return {"ui": {"text": [text]}, "result": (gather_keyframes(frames, keys), keys, text)}


NODE_CLASS_MAPPINGS = {"RerenderSelectKeyframes": RerenderSelectKeyframes}
NODE_DISPLAY_NAME_MAPPINGS = {"RerenderSelectKeyframes": "Rerender: Select Key Frames"}
