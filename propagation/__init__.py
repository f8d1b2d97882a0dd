"""Propagation of rendered key frames to every other frame (guided patch synthesis and blending).

Plain torch; never imports ComfyUI.
"""
