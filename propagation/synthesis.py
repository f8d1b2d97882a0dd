"""Guided patch-based synthesis, EbSynth's algorithm, vectorised in PyTorch (GPU or CPU).

For every target pixel a nearest-neighbour field (NNF) picks the source patch whose guides and
style best match the target's guides and current style estimate, under EbSynth's energy:
weighted patch SSD in 0..255 units plus the uniformity penalty λ·occupancy. Coarse to fine over
a pyramid; per level, search–vote iterations of PatchMatch (jump-flood propagation and random
search, Jacobi: every pixel tests a candidate at once) followed by plain voting (each pixel the
average of the overlapping source style patches).

To make one candidate test cheap, patches are compared through a per-level PCA of the weighted
5×5 feature patches (fit on the source): one convolution projects every patch, and a test is a
gather and a d-dimensional SSD instead of 25 × channels reads. With d = 16 the descriptors carry
nearly all of a patch's variance; the reported error map is the same descriptor SSD.
A video gives a good NNF for free: the previous frame's field carried by the flow (and the
positional guide) start the search, so a few iterations suffice.

The source side (the key's style and guides, their pyramid, PCA basis and descriptors) never
changes along a chain of frames, so it is built once (``SourcePyramid``) and reused for every
frame. All arithmetic is float32 whatever the inputs' dtype (patch errors overflow float16), and
the per-step loop makes no host synchronisation (no ``.item()``, no ``bincount``, no tensors built
from Python lists), so a GPU runs it without stalls.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SynthesisSettings:
    """Defaults are for video frames that come with an initial NNF from the previous frame."""

    patch_size: int = 5
    uniformity: float = 3500.0
    levels: int = 3                      # pyramid levels (capped so the coarsest side keeps 2·patch+1 pixels)
    # With no initial NNF, use more levels and iterations (EbSynth: all levels, 6-12 x 4-6 iterations).
    search_vote_iterations: int = 2
    patchmatch_iterations: int = 2
    descriptor_dims: int = 16
    search_radius: int = 8               # largest random-search radius, in pixels of each level
    jump_steps: tuple[int, ...] = (4, 2, 1)
    seed: int = 0


@dataclass
class SynthesisResult:
    style: torch.Tensor   # [B, Cs, H, W] synthesised target, 0..255
    error: torch.Tensor   # [B, 1, H, W] patch error of each target pixel (without the uniformity term)
    nnf: torch.Tensor     # [B, 2, H, W] int64, (x, y) of each target pixel's source patch centre


def pyramid_sizes(height: int, width: int, levels: int, patch_size: int) -> list[tuple[int, int]]:
    """Level sizes from coarsest to finest; the coarsest keeps a side of at least 2·patch+1."""
    sizes = [(height, width)]
    while len(sizes) < levels and min(sizes[-1]) // 2 >= 2 * patch_size + 1:
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    return sizes[::-1]


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return image if tuple(image.shape[-2:]) == size else F.interpolate(image, size=size, mode="area")


def _scale_xy(field: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """A [B, 2, H, W] field with its x plane times ``x`` and its y plane times ``y`` (no host-to-device copy)."""
    return torch.stack((field[:, 0] * x, field[:, 1] * y), dim=1)


def _grid(size: tuple[int, int], device) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size[0], device=device), torch.arange(size[1], device=device), indexing="ij")
    return torch.stack((xs, ys)).unsqueeze(0).float()


def resample_nnf(nnf: torch.Tensor, target_size: tuple[int, int], source_size: tuple[int, int],
                 from_source_size: tuple[int, int]) -> torch.Tensor:
    """Carry an NNF to other target and source resolutions.

    Its offsets (match minus the pixel's own position in source scale) are resampled nearest and
    rescaled, so a pixel between two coarse pixels keeps its sub-position: doubling gives EbSynth's
    ``2·nnf(⌊x/2⌋) + x mod 2``.

    Args:
        nnf: [B, 2, h, w] source (x, y) per target pixel, in a source of ``from_source_size`` (h, w).
    """
    old_target = tuple(nnf.shape[-2:])
    own = _scale_xy(_grid(old_target, nnf.device), from_source_size[1] / old_target[1], from_source_size[0] / old_target[0])
    offsets = nnf.float() - own
    if old_target != tuple(target_size):
        offsets = F.interpolate(offsets, size=target_size, mode="nearest")
    offsets = _scale_xy(offsets, source_size[1] / from_source_size[1], source_size[0] / from_source_size[0])
    grid = _scale_xy(_grid(target_size, nnf.device), source_size[1] / target_size[1], source_size[0] / target_size[0])
    return (grid + offsets).round().long()


def precise_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (CPU, CUDA); float32 elsewhere (Apple MPS and Intel XPU have no float64)."""
    return torch.float64 if torch.device(device).type in ("cpu", "cuda") else torch.float32


def pca_basis(features: torch.Tensor, patch_size: int, dims: int, generator: torch.Generator,
              samples: int = 4096) -> torch.Tensor:
    """The top ``dims`` principal directions of the ``patch_size``² patches of ``features``.

    Args:
        features: [1, C, H, W] float32, any device (``generator`` on the same device).

    Returns:
        [d, C, p, p] float32 on ``features``' device: a convolution weight that projects patches.
    """
    p, r = patch_size, patch_size // 2
    _, channels, height, width = features.shape
    device = features.device
    y = torch.randint(0, height, (samples,), generator=generator, device=device)
    x = torch.randint(0, width, (samples,), generator=generator, device=device)
    columns = [features[0, :, (y + dy).clamp(0, height - 1), (x + dx).clamp(0, width - 1)].T
               for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    patches = torch.cat(columns, dim=1).to(precise_dtype(device))     # [N, p·p·C], offset-major
    centred = patches - patches.mean(dim=0, keepdim=True)
    # The eigen-decomposition of this small matrix runs on the CPU in float64 on every device
    # (MPS has no eigh); it happens once per chain and level, not per frame.
    _, vectors = torch.linalg.eigh((centred.T @ centred).cpu().double())
    dims = min(dims, vectors.shape[1])
    top = vectors[:, -dims:].T.float().to(device)                     # [d, p·p·C]
    return top.view(dims, p, p, channels).permute(0, 3, 1, 2).contiguous()


def project(features: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Patch descriptors of a batch, each image with its own basis.

    Args:
        features: [B, C, H, W] float32.
        basis: [B, d, C, p, p] float32 (one PCA basis per image).

    Returns:
        [d, B·H·W] float32, batch-major along the second axis.
    """
    batch, channels, height, width = features.shape
    dims, p = basis.shape[1], basis.shape[-1]
    r = p // 2
    padded = F.pad(features, (r, r, r, r), mode="replicate").reshape(1, batch * channels, height + 2 * r, width + 2 * r)
    descriptors = F.conv2d(padded, basis.reshape(batch * dims, channels, p, p), groups=batch)
    return descriptors.view(batch, dims, height * width).permute(1, 0, 2).reshape(dims, -1).contiguous()


@dataclass
class SourceLevel:
    """One pyramid level of the source side of a batch of syntheses (constant along a chain)."""

    features: torch.Tensor      # [B, C, Hs, Ws] weighted style (first Cs channels) and guides, float32
    basis: torch.Tensor         # [B, d, C, p, p] PCA basis per image
    descriptors: torch.Tensor   # [d, B·Hs·Ws]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.features.shape[-2:])


@dataclass
class SourcePyramid:
    """The source of a synthesis at every pyramid level, coarsest first, with the weights used.

    Built once per chain (``build``) and stacked for a batch of chains (``stack``); reused for every
    frame of the chain, since the key's style and guides never change.
    """

    levels: list[SourceLevel]
    style_channels: int
    style_scale: float          # √(style weight per channel)
    guide_scale: torch.Tensor   # [1, Cg, 1, 1] √(weight of each guide channel), float32
    full_size: tuple[int, int]  # (Hs, Ws) of the finest level

    @staticmethod
    def build(style_source: torch.Tensor, guide_source: torch.Tensor, guide_weights: torch.Tensor,
              target_size: tuple[int, int], style_weight: float = 1.0,
              settings: "SynthesisSettings" = None, generator: torch.Generator | None = None) -> "SourcePyramid":
        """The pyramid of one or more sources.

        Args:
            style_source: [B, Cs, Hs, Ws] the stylised key, 0..255, any float dtype and device.
            guide_source: [B, Cg, Hs, Ws] its guides, 0..255.
            guide_weights: [Cg] weight per guide channel.
            target_size: (Ht, Wt) of the targets it will be matched to (decides the level count).
        """
        settings = settings or SynthesisSettings()
        device = style_source.device
        generator = generator or torch.Generator(device=device).manual_seed(settings.seed)
        style_channels = style_source.shape[1]
        style_scale = (style_weight / style_channels) ** 0.5
        guide_scale = guide_weights.to(device=device, dtype=torch.float32).sqrt().view(1, -1, 1, 1)
        source_size = tuple(style_source.shape[-2:])
        source_sizes, _ = level_sizes(source_size, target_size, settings)
        style, guides = style_source.float(), guide_source.float()
        levels = []
        for size in source_sizes:
            features = torch.cat((_resize(style, size) * style_scale, _resize(guides, size) * guide_scale), 1)
            basis = torch.stack([pca_basis(features[i:i + 1], settings.patch_size, settings.descriptor_dims, generator)
                                 for i in range(features.shape[0])])
            levels.append(SourceLevel(features, basis, project(features, basis)))
        return SourcePyramid(levels, style_channels, style_scale, guide_scale, source_size)

    @staticmethod
    def stack(pyramids: list["SourcePyramid"]) -> "SourcePyramid":
        """One pyramid for a batch of chains (all of the same size and weights)."""
        if len(pyramids) == 1:
            return pyramids[0]
        first = pyramids[0]
        levels = [SourceLevel(torch.cat([p.levels[i].features for p in pyramids]),
                              torch.cat([p.levels[i].basis for p in pyramids]),
                              torch.cat([p.levels[i].descriptors for p in pyramids], dim=1))
                  for i in range(len(first.levels))]
        return SourcePyramid(levels, first.style_channels, first.style_scale, first.guide_scale, first.full_size)


def level_sizes(source_size: tuple[int, int], target_size: tuple[int, int],
                settings: "SynthesisSettings") -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(source sizes, target sizes) of the pyramid levels, coarsest first, equally many of each."""
    levels = max(settings.levels, 1)
    source_sizes = pyramid_sizes(*source_size, levels, settings.patch_size)
    target_sizes = pyramid_sizes(*target_size, len(source_sizes), settings.patch_size)
    count = min(len(source_sizes), len(target_sizes))
    return source_sizes[-count:], target_sizes[-count:]


class _Level:
    """One pyramid level of one synthesis: the target's guides, occupancy and the NNF being improved."""

    def __init__(self, settings: SynthesisSettings, source: SourceLevel, target_guides: torch.Tensor,
                 style_channels: int, style_scale: float, generator: torch.Generator):
        self.settings = settings
        self.source = source
        self.target_guides = target_guides                         # [B, Cg, Ht, Wt] weighted guides
        self.style_channels = style_channels
        self.style_scale = style_scale
        self.generator = generator
        self.batch, _, self.sh, self.sw = source.features.shape
        self.th, self.tw = target_guides.shape[-2:]
        self.radius = settings.patch_size // 2
        offsets = torch.arange(self.batch, device=target_guides.device) * (self.sh * self.sw)
        self.batch_offset = offsets.view(self.batch, 1, 1)
        self.occupancy_scale = (self.sh * self.sw) / (self.th * self.tw)
        self.style_flat = source.features[:, :style_channels].permute(1, 0, 2, 3).reshape(style_channels, -1)
        self.ones = torch.ones(self.batch * self.th * self.tw, device=target_guides.device)
        rows = torch.arange(self.th, device=target_guides.device)
        columns = torch.arange(self.tw, device=target_guides.device)
        self.rows_from = {step: ((rows - step).clamp(0, self.th - 1), (rows + step).clamp(0, self.th - 1))
                          for step in settings.jump_steps}
        self.columns_from = {step: ((columns - step).clamp(0, self.tw - 1), (columns + step).clamp(0, self.tw - 1))
                             for step in settings.jump_steps}

    def set_target_style(self, style: torch.Tensor) -> None:
        self.target_descriptors = project(torch.cat((style * self.style_scale, self.target_guides), dim=1),
                                          self.source.basis)

    # -- the energy ------------------------------------------------------------------------------
    def clamp(self, nnf: torch.Tensor) -> torch.Tensor:
        r = self.radius
        return torch.stack((nnf[:, 0].clamp(r, self.sw - 1 - r), nnf[:, 1].clamp(r, self.sh - 1 - r)), dim=1)

    def flat(self, nnf: torch.Tensor) -> torch.Tensor:
        return (nnf[:, 1] * self.sw + nnf[:, 0] + self.batch_offset).reshape(-1)

    def patch_error(self, index: torch.Tensor) -> torch.Tensor:
        difference = self.source.descriptors.index_select(1, index)
        difference.sub_(self.target_descriptors).square_()
        return difference.sum(dim=0)

    def rebuild_occupancy(self, index: torch.Tensor) -> None:
        p, r = self.settings.patch_size, self.radius
        # index_add_, not bincount: bincount waits for the GPU to learn the output size.
        counts = torch.zeros(self.batch * self.sh * self.sw, device=index.device).index_add_(0, index, self.ones)
        counts = counts.view(self.batch, 1, self.sh, self.sw)
        covered = F.avg_pool2d(F.avg_pool2d(counts, p, 1, r), p, 1, r)
        self.occupancy = (covered * self.occupancy_scale).reshape(-1)

    def penalty(self, index: torch.Tensor) -> torch.Tensor:
        return self.settings.uniformity * self.occupancy.index_select(0, index)

    # -- voting ------------------------------------------------------------------------------------
    def vote(self, nnf: torch.Tensor) -> torch.Tensor:
        """Each target pixel: the mean of the source style of every patch that covers it."""
        r = self.radius
        padded = F.pad(nnf.float(), (r, r, r, r), mode="replicate").long()
        total = None
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                neighbour = padded[:, :, r + dy:r + dy + self.th, r + dx:r + dx + self.tw]
                index = ((neighbour[:, 1] - dy) * self.sw + neighbour[:, 0] - dx + self.batch_offset).reshape(-1)
                values = self.style_flat.index_select(1, index)
                total = values if total is None else total.add_(values)
        style = total.div_(self.settings.patch_size ** 2).view(self.style_channels, self.batch, self.th, self.tw)
        return style.permute(1, 0, 2, 3) / self.style_scale

    # -- PatchMatch --------------------------------------------------------------------------------
    def evaluate(self, nnf: torch.Tensor) -> None:
        self.nnf = self.clamp(nnf)
        index = self.flat(self.nnf)
        self.rebuild_occupancy(index)
        self.error = self.patch_error(index)
        self.total = self.error + self.penalty(index)

    def refresh_penalty(self) -> None:
        index = self.flat(self.nnf)
        self.rebuild_occupancy(index)
        self.total = self.error + self.penalty(index)

    def try_candidate(self, candidate: torch.Tensor) -> None:
        candidate = self.clamp(candidate)
        index = self.flat(candidate)
        error = self.patch_error(index)
        total = error + self.penalty(index)
        better = total < self.total
        self.total = torch.where(better, total, self.total)
        self.error = torch.where(better, error, self.error)
        mask = better.view(self.batch, 1, self.th, self.tw)
        self.nnf = torch.where(mask, candidate, self.nnf)

    def patchmatch(self, iterations: int) -> None:
        for _ in range(iterations):
            for step in self.settings.jump_steps:
                for dx, dy in ((step, 0), (-step, 0), (0, step), (0, -step)):
                    self.try_candidate(self._neighbour_candidate(dx, dy))
            radius = self.settings.search_radius
            while radius >= 1:
                jitter = torch.randint(-radius, radius + 1, self.nnf.shape, generator=self.generator,
                                       device=self.nnf.device)
                self.try_candidate(self.nnf + jitter)
                radius //= 2
            self.refresh_penalty()

    def _neighbour_candidate(self, dx: int, dy: int) -> torch.Tensor:
        """Each pixel p takes the match of its neighbour p − (dx, dy), shifted by (dx, dy)."""
        if dx:
            xs = self.columns_from[abs(dx)][0 if dx > 0 else 1]
            shifted = self.nnf[:, :, :, xs]
        else:
            ys = self.rows_from[abs(dy)][0 if dy > 0 else 1]
            shifted = self.nnf[:, :, ys]
        return torch.stack((shifted[:, 0] + dx, shifted[:, 1] + dy), dim=1)

    def random_nnf(self) -> torch.Tensor:
        r = self.radius
        shape, device = (self.batch, 1, self.th, self.tw), self.target_guides.device
        x = torch.randint(r, self.sw - r, shape, generator=self.generator, device=device)
        y = torch.randint(r, self.sh - r, shape, generator=self.generator, device=device)
        return torch.cat((x, y), dim=1)


def synthesize(style_source: torch.Tensor, guide_source: torch.Tensor, guide_target: torch.Tensor,
               guide_weights: torch.Tensor, style_weight: float = 1.0, init_nnf: torch.Tensor | None = None,
               candidates: tuple[torch.Tensor, ...] = (), settings: SynthesisSettings = SynthesisSettings()
               ) -> SynthesisResult:
    """Synthesise the target's style from the source's, guided by the guides.

    Args:
        style_source: [B, Cs, Hs, Ws] source style (the stylised key frame), 0..255, any float dtype.
        guide_source, guide_target: [B, Cg, Hs, Ws] and [B, Cg, Ht, Wt] guides, 0..255.
        guide_weights: [Cg] weight of each guide channel (EbSynth: guide weight / its channel count).
        style_weight: weight of the style term, split over the style channels.
        init_nnf: optional [B, 2, Ht, Wt] starting field (source x, y per target pixel, finest level).
        candidates: further [B, 2, Ht, Wt] fields each pixel may take if they match better.
        settings: see ``SynthesisSettings``.

    Returns:
        the target style, the per-pixel patch error and the NNF at the finest level (float32,
        int64 NNF) on the inputs' device.
    """
    generator = torch.Generator(device=style_source.device).manual_seed(settings.seed)
    source = SourcePyramid.build(style_source, guide_source, guide_weights, tuple(guide_target.shape[-2:]),
                                 style_weight, settings, generator)
    return synthesize_from(source, guide_target, init_nnf, candidates, settings, generator)


def synthesize_from(source: SourcePyramid, guide_target: torch.Tensor, init_nnf: torch.Tensor | None = None,
                    candidates: tuple[torch.Tensor, ...] = (), settings: SynthesisSettings = SynthesisSettings(),
                    generator: torch.Generator | None = None) -> SynthesisResult:
    """``synthesize`` with a source pyramid built beforehand (``SourcePyramid.build``/``stack``).

    Args:
        source: the source side for a batch of B syntheses.
        guide_target: [B, Cg, Ht, Wt] target guides, 0..255, on the pyramid's device.
    """
    device = guide_target.device
    generator = generator or torch.Generator(device=device).manual_seed(settings.seed)
    source_size, target_size = source.full_size, tuple(guide_target.shape[-2:])
    _, target_sizes = level_sizes(source_size, target_size, settings)
    if len(target_sizes) != len(source.levels):
        raise ValueError(f"synthesize_from: the source pyramid has {len(source.levels)} levels but a "
                         f"{target_size[1]}x{target_size[0]} target needs {len(target_sizes)}: build it for this size.")
    guides = guide_target.float() * source.guide_scale
    nnf = None
    previous_source = None
    for level_index, (source_level, t_size) in enumerate(zip(source.levels, target_sizes)):
        s_size = source_level.size
        level = _Level(settings, source_level, _resize(guides, t_size), source.style_channels, source.style_scale,
                       generator)
        if nnf is not None:
            nnf = resample_nnf(nnf, t_size, s_size, previous_source)
        elif init_nnf is not None:
            nnf = resample_nnf(init_nnf, t_size, s_size, source_size)
        else:
            nnf = level.random_nnf()
        extra = [resample_nnf(c, t_size, s_size, source_size) for c in candidates]
        if init_nnf is not None and level_index > 0:
            extra.append(resample_nnf(init_nnf, t_size, s_size, source_size))
        level.nnf = level.clamp(nnf)
        style = level.vote(level.nnf)
        for iteration in range(settings.search_vote_iterations):
            level.set_target_style(style)
            level.evaluate(level.nnf)
            if iteration == 0:
                for candidate in extra:
                    level.try_candidate(candidate)
                level.refresh_penalty()
            level.patchmatch(settings.patchmatch_iterations)
            style = level.vote(level.nnf)
        nnf, previous_source = level.nnf, s_size
    error = level.error.view(level.batch, 1, *target_sizes[-1])
    return SynthesisResult(style, error, nnf)
