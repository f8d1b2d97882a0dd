"""RerenderResizeFrames: bring frames loaded elsewhere to the size Rerender works at."""
from __future__ import annotations

from ..video.resize import resize_frames
from .socket_types import CATEGORY


class RerenderResizeFrames:
    DESCRIPTION = ("Resize an image batch the way Rerender: Load Video does while loading: the short side to "
                   "short_side, each side rounded to a multiple of 64. For frames from other nodes, e.g. core "
                   "ComfyUI's Load Video → Get Video Components, which keep the clip's own size.")
    CATEGORY = CATEGORY
    FUNCTION = "resize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The frames at the new size (the same batch when the size already fits).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "The frames to resize, as one image batch."}),
            "short_side": ("INT", {"default": 512, "min": 0, "max": 8192, "step": 64,
                                   "tooltip": "Resize so the short side is this and both sides are multiples of 64, "
                                              "as the paper does (0: keep the size)."}),
        }}

    def resize(self, frames, short_side):
        return (resize_frames(frames, short_side, name="frames"),)


NODE_CLASS_MAPPINGS = {"RerenderResizeFrames": RerenderResizeFrames}
NODE_DISPLAY_NAME_MAPPINGS = {"RerenderResizeFrames": "Rerender: Resize Frames"}
