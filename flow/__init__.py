"""Optical flow between video frames: estimation, occlusion masks, warping, visualisation.

Plain torch / OpenCV functions; never imports ComfyUI.
"""
