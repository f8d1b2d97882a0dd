"""Test harness: the real ComfyUI host in-process and as a server, and random-weight models."""
