"""The key-frame consistency sweep: cases of content × motion, rendered under each constraint.

Shared by ``bench/keyframes_consistency.py`` (the whole sweep, as a table) and
``tests/test_keyframes_mechanism.py`` (a fixed subset of it). A case is a short clip of key
frames with a known, constant motion: a smooth random texture, or a crop of a real frame of
``../shared/data/videos``, translated by (dx, dy) pixels per frame with bicubic resampling, so
motion below a pixel is real motion and the forward flow is known exactly. Its figure is the
flow-warped error between consecutive rendered key frames (the paper's Pixel-MSE on a clip with
nothing occluded) under a configuration, divided by the same error with no constraint.

Rendered with the tiny SD1.5-shaped texture denoiser and the motion-keeping VAE
(harness/denoiser.py, harness/models.py): with random weights no constraint could steer anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .rendering import CONSTRAINT_NODES, constrain, render, warped_mse
from .synthetic import constant_flow, sample_at, textured

FRAMES, SIZE = 4, 64
# The renderer settings every case is rendered with: the reference's 20 steps at its default denoise.
RENDER_SETTINGS = dict(steps=20, cfg=3.0, denoise=0.75)

CONFIGS: dict[str, tuple[str, ...]] = {
    "none": (),
    "attention": ("RerenderCrossFrameAttention",),
    "shape": ("RerenderShapeFusion",),
    "pixel": ("RerenderPixelFusion",),
    "adain": ("RerenderColorAdaIN",),
    "all four": CONSTRAINT_NODES,
}


@dataclass(frozen=True)
class SweepCase:
    """One clip of the sweep.

    Attributes:
        content: "texture" (a smooth random texture with colour cells ``cell`` px apart, from ``seed``)
            or a video file name under data/videos (a crop of one of its frames, chosen by ``seed``).
        dx, dy: motion in pixels per frame (content moves right/down for positive values).
    """

    content: str
    seed: int
    dx: float
    dy: float
    cell: int = 0

    @property
    def name(self) -> str:
        what = f"texture cell {self.cell} seed {self.seed}" if self.content == "texture" else \
            f"{Path(self.content).stem} crop {self.seed}"
        return f"{what}, ({self.dx:+g}, {self.dy:+g}) px"


# Content of several scales and two real clips, motions from a quarter pixel to 8 px per frame in
# all four quadrants; listed once, in no order of outcome.
CASES: tuple[SweepCase, ...] = (
    SweepCase("texture", seed=1, cell=8, dx=0.5, dy=0.25),
    SweepCase("texture", seed=2, cell=16, dx=3, dy=-1),
    SweepCase("texture", seed=3, cell=16, dx=-2, dy=1.5),
    SweepCase("texture", seed=4, cell=24, dx=6, dy=-2),
    SweepCase("texture", seed=5, cell=32, dx=0, dy=8),
    SweepCase("texture", seed=6, cell=12, dx=-8, dy=0),
    SweepCase("wolf.mp4", seed=0, dx=1.5, dy=0.5),
    SweepCase("wolf.mp4", seed=1, dx=3, dy=-1),
    SweepCase("wolf.mp4", seed=2, dx=-5, dy=-3),
    SweepCase("woman-running.mp4", seed=0, dx=0.75, dy=-0.5),
    SweepCase("woman-running.mp4", seed=1, dx=4, dy=4),
    SweepCase("woman-running.mp4", seed=2, dx=-7, dy=2),
)


def _video_frame(path: Path, seed: int, short_side: int) -> torch.Tensor:
    """A frame of a clip (which one: from ``seed``), scaled to ``short_side``: [1, 3, h, w] in [0, 1]."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        index = int(torch.randint(0, max(count, 1), (1,), generator=torch.Generator().manual_seed(seed)))
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = capture.read()
    finally:
        capture.release()
    if not ok:
        raise RuntimeError(f"could not read frame {index} of {path}")
    height, width = bgr.shape[:2]
    scale = short_side / min(height, width)
    bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).float().div(255).permute(2, 0, 1)[None]


def _source_image(case: SweepCase, data: Path, margin: int) -> torch.Tensor:
    side = SIZE + 2 * margin
    if case.content == "texture":
        return textured(side, side, case.seed, case.cell)
    # A real frame at twice the key frames' size, so a crop shows a part of the scene, not a pixel of it.
    frame = _video_frame(data / "videos" / case.content, case.seed, short_side=max(2 * SIZE, side))
    generator = torch.Generator().manual_seed(case.seed)
    top = int(torch.randint(0, frame.shape[-2] - side + 1, (1,), generator=generator))
    left = int(torch.randint(0, frame.shape[-1] - side + 1, (1,), generator=generator))
    return frame[..., top:top + side, left:left + side]


def case_clip(case: SweepCase, data: Path, frames: int = FRAMES) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip of a case.

    Args:
        data: the shared data folder (``../shared/data``), for the video cases.

    Returns:
        (clip [frames, 3, 64, 64] in [0, 1], forward flow [frames−1, 2, 64, 64] = (dx, dy) everywhere).
    """
    margin = 4 + int(max(abs(case.dx), abs(case.dy)) * frames + 1)
    source = _source_image(case, data, margin)
    # Frame i shows the source at (x + margin − i·dx, y + margin − i·dy): content moves by (dx, dy).
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32),
                            indexing="ij")
    clip = torch.cat([sample_at(source, xs + margin - i * case.dx, ys + margin - i * case.dy) for i in range(frames)])
    return clip, constant_flow(case.dx, case.dy, SIZE, SIZE, batch=frames - 1)


class KnownFlow:
    """A flow estimator that knows the case's motion: frames are recognised in the clip, and the flow
    from frame i to frame j is (j − i)·(dx, dy). For finding out what the estimated flow costs."""

    def __init__(self, clip: torch.Tensor, dx: float, dy: float):
        self.clip, self.motion = clip, (dx, dy)

    def _index(self, frame: torch.Tensor) -> int:
        for index, candidate in enumerate(self.clip):
            if torch.equal(candidate, frame.to(candidate)):
                return index
        raise ValueError("KnownFlow was given a frame that is not in its clip")

    def __call__(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        flows = []
        for a, b in zip(source, target):
            steps = self._index(b) - self._index(a)
            flows.append(constant_flow(steps * self.motion[0], steps * self.motion[1], *a.shape[-2:]))
        return torch.cat(flows)


def composed_dis_flow(pack, clip: torch.Tensor, keys=None):
    """The key-to-key flow of key frames ``keys`` of a clip (default: every frame), chained from DIS
    medium flows between consecutive frames (``ComposedKeyFlow``), as RerenderKeyframes uses the clip's flow."""
    video_flow = pack.flow.video_flow.estimate_video_flow(clip, pack.flow.dis.DisFlow("medium"), "dis_medium")
    return pack.keyframes.references.ComposedKeyFlow(video_flow, range(clip.shape[0]) if keys is None else keys)


def render_errors(host, pack, model, vae, clip: torch.Tensor, forward: torch.Tensor,
                  configs: dict[str, tuple[str, ...]] = CONFIGS, flow="medium", **overrides) -> dict[str, float]:
    """Flow-warped MSE between consecutive rendered key frames, per configuration.

    Args:
        model, vae: the texture denoiser and the motion-keeping VAE.
        flow: the renderer's flow: a DIS preset (medium, as the node's default) or any flow estimator.
        overrides: renderer settings replacing ``RENDER_SETTINGS``.
    """
    settings = dict(RENDER_SETTINGS, flow=flow, **overrides)
    errors = {}
    for name, nodes in configs.items():
        patched = constrain(host, model, vae, *nodes) if nodes else model
        images, _, _ = render(pack, patched, vae, clip, **settings)
        errors[name] = warped_mse(pack, images, forward)
    return errors
