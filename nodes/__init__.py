"""The pack's ComfyUI nodes (classic V1 registration).

Node classes stay thin: inputs, tooltips, outputs and one call into the plain modules.
Each module below exports its own NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS.
"""
from . import consistency, frame_size, keyframe_selection, keyframes, optical_flow, propagation, video_io

_MODULES = (video_io, frame_size, keyframe_selection, optical_flow, consistency, keyframes, propagation)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in _MODULES:
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
