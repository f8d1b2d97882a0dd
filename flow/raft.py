"""RAFT optical flow through torchvision's implementation, with real weights from a file.

Accepted weight files:
* torchvision's own RAFT state dicts (``raft_large_*.pth``, ``raft_small_*.pth``);
* the original princeton-vl checkpoints (``raft-sintel.pth``, ``raft-things.pth``,
  ``raft-kitti.pth``, ``raft-small.pth``), whose keys are renamed to torchvision's layout.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .warp import resize_flow

# RAFT's four-level correlation pyramid needs feature maps of at least 16 px, i.e. 128 px images.
MIN_SIDE = 128

# princeton-vl name → torchvision name, applied in order to each key (after dropping "module.").
_ORIGINAL_TO_TORCHVISION = [
    (r"^fnet\.", "feature_encoder."),
    (r"^cnet\.", "context_encoder."),
    (r"^(feature_encoder|context_encoder)\.conv1\.", r"\1.convnormrelu.0."),
    (r"^(feature_encoder|context_encoder)\.norm1\.", r"\1.convnormrelu.1."),
    (r"^(feature_encoder|context_encoder)\.conv2\.", r"\1.conv."),
    (r"\.(layer\d\.\d)\.conv(\d)\.", r".\1.convnormrelu\2.0."),
    (r"\.(layer\d\.\d)\.norm(\d)\.", r".\1.convnormrelu\2.1."),
    (r"^update_block\.encoder\.convc(\d)\.", r"update_block.motion_encoder.convcorr\1.0."),
    (r"^update_block\.encoder\.convf(\d)\.", r"update_block.motion_encoder.convflow\1.0."),
    (r"^update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0."),
    (r"^update_block\.gru\.conv([zrq])(\d)\.", r"update_block.recurrent_block.convgru\2.conv\1."),
    (r"^update_block\.gru\.conv([zrq])\.", r"update_block.recurrent_block.convgru1.conv\1."),
    (r"^update_block\.mask\.0\.", "mask_predictor.convrelu.0."),
    (r"^update_block\.mask\.2\.", "mask_predictor.conv."),
]


class RaftWeightsError(ValueError):
    """The file given as RAFT weights is missing or is not a RAFT checkpoint."""


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise RaftWeightsError(
            f"RAFT weights not found: {path}. Put a RAFT checkpoint (raft-sintel.pth, raft-things.pth, "
            "raft-small.pth or a torchvision raft_large/raft_small .pth) into models/optical_flow.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is the same user mistake
        raise RaftWeightsError(f"{path.name} is not a RAFT checkpoint: it could not be read as PyTorch weights "
                               f"({type(error).__name__}: {error}).") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not state:
        raise RaftWeightsError(f"{path.name} is not a RAFT checkpoint: it holds no weights.")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _rename_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _ORIGINAL_TO_TORCHVISION:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


def load_raft(path: str | Path) -> torch.nn.Module:
    """Build torchvision's RAFT (large or small, from the weights) and load the file into it.

    Returns:
        The model in eval mode on the CPU, float32.

    Raises:
        RaftWeightsError: missing file, unreadable file, or weights that are not RAFT's.
    """
    from torchvision.models.optical_flow import raft_large, raft_small

    path = Path(path)
    state = _read_state_dict(path)
    if any(k.startswith("fnet.") for k in state):
        state = _rename_original(state)
    if not any(k.startswith("feature_encoder.") for k in state):
        sample = ", ".join(list(state)[:3])
        raise RaftWeightsError(f"{path.name} is not a RAFT checkpoint (its weights are named like {sample}).")
    small = "update_block.recurrent_block.convgru2.convz.weight" not in state
    model = (raft_small if small else raft_large)(weights=None, progress=False)
    expected = model.state_dict()
    # RAFT's residual blocks register their down-sampling norm twice (norm3 and downsample.1);
    # torchvision keeps one. BatchNorm step counters may be absent from older files.
    state = {k: v for k, v in state.items() if k in expected}
    for key, value in expected.items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    missing = [k for k in expected if k not in state]
    if missing:
        raise RaftWeightsError(f"{path.name} is not a RAFT {'small' if small else 'large'} checkpoint: "
                               f"{len(missing)} weights are missing (e.g. {missing[0]}).")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise RaftWeightsError(f"{path.name} does not fit torchvision's RAFT: {error}") from None
    return model.eval()


def bytes_per_pair(height: int, width: int, half: bool = False) -> int:
    """Upper estimate of the device memory RAFT needs for one pair of ``height`` × ``width`` frames.

    Dominated by the all-pairs correlation volume at 1/8 resolution, (HW/64)² values, and its
    3 pooled levels (+1/3); feature, context and update-block activations add about 3 kB per pixel.
    The image is padded to multiples of 8 (and enlarged to 128 px when smaller).
    """
    scale = max(1.0, MIN_SIDE / max(min(height, width), 1))
    height, width = -(-round(height * scale) // 8) * 8, -(-round(width * scale) // 8) * 8
    cells = (height // 8) * (width // 8)
    element = 2 if half else 4
    return int(cells * cells * element * 4 / 3 + height * width * 3000)


class RaftFlow:
    """Callable flow estimator around a loaded RAFT model, on whatever device the model is.

    ``flow = RaftFlow(model)(source, target)`` with ``source``/``target`` [B, 3, H, W] float RGB
    in [0, 1]; returns the source→target flow [B, 2, H, W] in pixels (float32, CPU). Frames are
    padded to multiples of 8 (replicate) and the flow cropped back; frames whose short side is
    under 128 px (RAFT's correlation pyramid needs at least that) are estimated enlarged and the
    flow is scaled back. ``half`` runs the network
    under float16 autocast on CUDA (ignored elsewhere); the model itself is never modified.
    ``pairs_per_batch(height, width)`` says how many pairs to run at once (the node sizes it from
    ``bytes_per_pair`` and the free device memory); by default one.
    """

    def __init__(self, model: torch.nn.Module, half: bool = False, iterations: int = 12,
                 pairs_per_batch: Callable[[int, int], int] | None = None):
        self.model = model
        self.device = next(model.parameters()).device
        self.half = half and self.device.type == "cuda"
        self.iterations = iterations
        self.pairs_per_batch = pairs_per_batch or (lambda height, width: 1)

    @torch.no_grad()
    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        height, width = source.shape[-2:]
        if min(height, width) < MIN_SIDE:
            scale = MIN_SIDE / min(height, width)
            size = (round(height * scale), round(width * scale))
            enlarge = lambda images: F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False)
            return resize_flow(self(enlarge(source), enlarge(target)), height, width)
        pad_h, pad_w = (-height) % 8, (-width) % 8
        padding = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        flows = []
        batch = max(1, int(self.pairs_per_batch(height + pad_h, width + pad_w)))
        for start in range(0, source.shape[0], batch):
            pair = [F.pad(images[start:start + batch].to(self.device, torch.float32) * 2 - 1,
                          padding, mode="replicate") for images in (source, target)]
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
                flow = self.model(pair[0], pair[1], num_flow_updates=self.iterations)[-1]
            flows.append(flow[..., padding[2]:padding[2] + height, padding[0]:padding[0] + width].float().cpu())
        return torch.cat(flows)
