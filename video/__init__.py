"""Clip-level helpers: key-frame selection (and, later, reading and writing video files).

Never imports ComfyUI.
"""
