"""The small layer between the pack and ComfyUI internals.

Everything that differs between the March-2024 host and current hosts (comfyui_host.md §8)
is switched here, so the rest of the pack calls one API.
"""
