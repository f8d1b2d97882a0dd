"""Rerender A Video for ComfyUI.

Loaded by ComfyUI from ``custom_nodes/<any folder name>``: every import inside the pack is
relative, so the folder may be called ComfyUI-Rerender, rerender-a-video or anything else.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
