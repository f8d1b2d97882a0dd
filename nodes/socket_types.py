"""Names of the custom socket types this pack passes between its nodes.

Saved workflows store these strings: never rename one.
"""

KEYFRAME_INDICES = "RERENDER_KEYFRAME_INDICES"
CATEGORY = "Rerender"
FLOW = "RERENDER_FLOW"
# comfyui_controlnet_aux's optical-flow type (Unimatch): accepted wherever a flow is.
OPTICAL_FLOW = "OPTICAL_FLOW"
