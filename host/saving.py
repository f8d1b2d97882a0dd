"""What the host says about saving outputs: where files go and whether they may carry the workflow."""
from __future__ import annotations

import json

from comfy.cli_args import args


def metadata_enabled() -> bool:
    """False when ComfyUI runs with --disable-metadata (then no file may carry the prompt or workflow)."""
    return not getattr(args, "disable_metadata", False)


def workflow_metadata(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    """The tags ComfyUI's own Save Video embeds: each ``extra_pnginfo`` entry (the UI ``workflow``) and the
    API ``prompt``, as JSON text. Empty with --disable-metadata."""
    if not metadata_enabled():
        return {}
    tags = {key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()}
    if prompt is not None:
        tags["prompt"] = json.dumps(prompt)
    return tags
