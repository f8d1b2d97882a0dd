"""Model folders the pack adds to the host's ``folder_paths``."""
from __future__ import annotations

import os

import folder_paths

OPTICAL_FLOW = "optical_flow"
WEIGHT_EXTENSIONS = {".pth", ".pt", ".safetensors"}


def register_model_folders() -> None:
    """Add ``models/optical_flow`` (kept if extra_model_paths.yaml already listed more paths)."""
    default = os.path.join(folder_paths.models_dir, OPTICAL_FLOW)
    entry = folder_paths.folder_names_and_paths.get(OPTICAL_FLOW)
    if entry is None:
        folder_paths.folder_names_and_paths[OPTICAL_FLOW] = ([default], set(WEIGHT_EXTENSIONS))
        return
    paths, extensions = entry
    if default not in paths:
        paths.append(default)
    extensions.update(WEIGHT_EXTENSIONS)


def model_files(kind: str) -> list[str]:
    return list(folder_paths.get_filename_list(kind))


def model_path(kind: str, name: str) -> str | None:
    """The full path of a model file listed in ``kind``, or None when it is not there."""
    return folder_paths.get_full_path(kind, name)
