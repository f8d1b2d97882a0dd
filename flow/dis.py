"""OpenCV DIS optical flow (Kroeger et al. 2016): no weights, fast on the CPU.

The presets are OpenCV's; ``fine`` is the medium preset with the finest scale set to 0 (full
resolution), about four times slower and clearly more accurate.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

PRESETS = {
    "ultrafast": (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, None),
    "fast": (cv2.DISOPTICAL_FLOW_PRESET_FAST, None),
    "medium": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, None),
    "fine": (cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 0),
}


def _to_gray_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] float RGB in [0, 1] → [B, H, W] uint8 luma."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    gray = (images * weights).sum(dim=1).clamp(0, 1).mul(255).round()
    return gray.to(torch.uint8).cpu().numpy()


class DisFlow:
    """Callable flow estimator: ``flow = DisFlow("medium")(source, target)``.

    ``source`` and ``target`` are [B, 3, H, W] float RGB in [0, 1]; the result is the
    source→target flow [B, 2, H, W] in pixels (float32, CPU). OpenCV parallelises each pair
    internally, so pairs run one after another.
    """

    def __init__(self, preset: str = "medium"):
        if preset not in PRESETS:
            raise ValueError(f"Unknown DIS preset '{preset}': choose one of {', '.join(PRESETS)}.")
        self.preset = preset

    def _create(self):
        code, finest_scale = PRESETS[self.preset]
        dis = cv2.DISOpticalFlow_create(code)
        if finest_scale is not None:
            dis.setFinestScale(finest_scale)
        return dis

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        src, dst = _to_gray_uint8(source), _to_gray_uint8(target)
        dis = self._create()
        flows = [dis.calc(src[i], dst[i], None) for i in range(src.shape[0])]
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()
