"""Rendering key frames one after another under Rerender's cross-frame constraints.

The first key frame is the anchor. Its first pass is a plain render that leaves behind the
anchor's attention features, its x̂0 and x̂0 statistics per step, and its image. Every later key
frame k is then rendered
  * pass 1: cross-frame attention, shape-aware fusion and AdaIN (those attached to the model);
  * with pixel-aware fusion, pass 2: the anchor's and the previous key frame's outputs, warped to
    frame k, are composited over pass 1's render, encoded fidelity-first, and blended into x_t
    during the pixel-fusion steps; pass 2 is the frame's output. Where neither reference shows
    the frame, the composite holds pass 1's render and is fused all the same (``fuse_occluded``).
With pixel-aware fusion the anchor gets its second pass too, against its own first render (the
reference renders its first output key frame against the anchor; a plain anchor among fused key
frames would differ from all of them in character). The "previous" attention reference is
updated by a frame's last pass. All frames share one noise (same seed), the reference's
fixed-noise prior. The flow from key frame k to the anchor and to the previous key frame is
estimated between them or, given the clip's flow, chained from its consecutive flows.

Each constraint acts at the steps whose diffusion timestep lies in its range, a stretch of the
reference's full 20-step schedule (settings.StepRange), not a fraction of the steps run here: at
denoise 0.75 pixel-aware fusion acts at t ≈ 401…201 as in the reference, and a range inside the
part a denoise below 1 skips (shape-aware fusion's default at 0.75) does nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers

from ..flow.frames import check_frames
from ..flow.video_flow import FlowEstimator
from ..flow.warp import flow_to_latent
from ..host.memory import USABLE_FRACTION, free_bytes, is_accelerator, make_room, staging_tensor
from ..host.sampling import previewer, require_sd15, sigma_schedule, sigma_timesteps, vae_decode, vae_encode
from .attention import (ATTEND, ATTEND_AND_UPDATE, IN_HOST_RAM, OFF, RECORD_ANCHOR, AttentionFeatures,
                        CrossFrameAttentionHook, StepClock, choose_feature_storage, estimate_feature_bytes)
from .conditioning import check_control_images, conditioning_for_frame
from .constraints import (adain, blend_masks, channel_stats, compensation_mask, composite_references,
                          fidelity_target, pixel_fusion_blend, pixel_fusion_weights, shape_fusion)
from .references import ComposedKeyFlow, DirectKeyFlow, Reference, identity_reference, reference_from_flow
from .sampler import ddim_sampler_function
from .settings import Constraints, CrossFrameAttention, constraints_of

NODE = "RerenderKeyframes"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingSettings:
    seed: int
    steps: int = 20
    cfg: float = 7.5
    scheduler: str = "ddim_uniform"
    denoise: float = 1.0


@dataclass
class AnchorMemory:
    """What the anchor pass leaves for the later key frames (sampler-space latents)."""

    x0: dict[int, torch.Tensor] = field(default_factory=dict)
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


@dataclass
class PixelTarget:
    target: torch.Tensor     # fused target latent x_trg (sampler space)
    w: torch.Tensor
    r: torch.Tensor


class FramePass:
    """The hooks of one sampling pass of one key frame (see sampler.StepHooks)."""

    def __init__(self, renderer: "KeyframeRenderer", attention_mode: str, record_anchor: bool = False,
                 anchor_reference: Reference | None = None, pixel: PixelTarget | None = None):
        self.renderer = renderer
        self.constraints: Constraints = renderer.constraints
        self.attention_mode = attention_mode
        self.record_anchor = record_anchor
        self.pixel = pixel
        self.generator = torch.Generator().manual_seed(renderer.sampling.seed)
        self.latent_flow = self.latent_validity = None
        if anchor_reference is not None and self.constraints.shape_fusion is not None:
            self.latent_flow = flow_to_latent(anchor_reference.flow)
            self.latent_validity = anchor_reference.validity

    def begin_step(self, step, total, x, direction, sigma):
        clock = self.renderer.clock
        clock.step, clock.total, clock.timestep = step, total, self.renderer.timesteps[step]
        if self.renderer.attention is not None:
            self.renderer.attention.mode = self.attention_mode
        fusion = self.constraints.pixel_fusion
        if self.pixel is not None and direction is not None and fusion.steps.active(clock.timestep):
            # Drawn on the CPU generator so the noise is the same on every device.
            noise = torch.randn(x.shape, generator=self.generator).to(x)
            x = pixel_fusion_blend(x, direction, self.pixel.target.to(x), noise, sigma,
                                   self.pixel.w.to(x), self.pixel.r.to(x))
        return x

    def adjust_x0(self, step, x0):
        timestep, anchor, c = self.renderer.timesteps[step], self.renderer.anchor, self.constraints
        if self.record_anchor:
            if c.shape_fusion is not None and c.shape_fusion.steps.active(timestep):
                anchor.x0[step] = x0.clone()
            if c.color_adain is not None and c.color_adain.steps.active(timestep):
                anchor.stats[step] = channel_stats(x0)
            return x0
        # What the anchor pass and the flow estimator left may sit on another device or in another
        # dtype than this pass's x̂0 (offloaded model, --gpu-only, a half-precision UNet): moved here.
        if c.color_adain is not None and c.color_adain.steps.active(timestep):
            mean, std = anchor.stats[step]
            x0 = adain(x0, mean.to(x0.device), std.to(x0.device))
        if self.latent_flow is not None and c.shape_fusion.steps.active(timestep):
            x0 = shape_fusion(x0, anchor.x0[step].to(x0), self.latent_flow.to(x0.device),
                              self.latent_validity.to(x0))
        return x0


class KeyframeRenderer:
    """Renders a batch of key frames with the constraints attached to ``model``.

    Args:
        model: a ModelPatcher of an SD1.5 model, possibly carrying constraint settings.
        vae: encodes the key frames and decodes the results.
        positive, negative: CONDITIONING; ControlNet control images may hold one image per key frame.
        flow_estimator: flow between key frames (used by shape and pixel fusion).
        clip_flow: optional: the flow between key frames composed from the consecutive flows of the
            clip they come from, used instead of ``flow_estimator`` (it follows large motion that a
            direct estimate between key frames far apart loses).
        report: progress callback ``report(done, total, preview)``; may raise to stop.
        on_step: optional ``on_step(key_index, pass_index, step, x0)`` called with every step's final
            x̂0 (sampler space), for inspection.
        feature_dtype: precision of the stored attention features (half by default, to halve memory).
    """

    def __init__(self, model, vae, positive, negative, flow_estimator: FlowEstimator,
                 sampling: SamplingSettings, report: Callable | None = None, on_step: Callable | None = None,
                 feature_dtype: torch.dtype = torch.float16, clip_flow: ComposedKeyFlow | None = None):
        require_sd15(model, NODE)
        if sampling.steps < 2:
            raise ValueError(f"steps is {sampling.steps}: {NODE} needs at least 2 steps (20 is the reference's).")
        self.vae, self.positive, self.negative = vae, positive, negative
        self.key_flow = clip_flow if clip_flow is not None else DirectKeyFlow(flow_estimator)
        self.sampling = sampling
        self.report = report
        self.on_step = on_step
        self.constraints = constraints_of(model)
        self.model = model.clone()
        self.clock = StepClock()
        load_device = self.model.load_device
        self.features = AttentionFeatures(feature_dtype, to_host=lambda tensor: staging_tensor(tensor, load_device))
        self.anchor = AnchorMemory()
        self.attention = None
        if self.constraints.cross_frame_attention is not None:
            hook = self.attention = CrossFrameAttentionHook(self.constraints.cross_frame_attention, self.clock,
                                                            self.features)
            # A closure, not the hook object: model clones deep-copy callable objects.
            self.model.set_model_attn1_patch(lambda n, context, value, extra: hook(n, context, value, extra))
        self.sigmas = sigma_schedule(self.model, sampling.scheduler, sampling.steps, sampling.denoise)
        # The diffusion timestep of every executed step: the constraints' ranges are positions on the
        # full schedule (see settings.StepRange), so they act at the same noise levels at any denoise.
        self.timesteps = sigma_timesteps(self.model, self.sigmas)
        self.previewer = previewer(self.model)
        self.steps_done = 0
        self.steps_total = 0

    # -- checks -----------------------------------------------------------------------------
    def _check_frames(self, frames: torch.Tensor) -> None:
        check_frames(frames, "key_frames")
        height, width = frames.shape[-2:]
        if height % 8 or width % 8:
            raise ValueError(f"key_frames are {width}x{height}, but SD1.5 needs both sides divisible by 8: "
                             "resize or crop the frames (multiples of 64 work best).")
        for conditioning, name in ((self.positive, "positive"), (self.negative, "negative")):
            check_control_images(conditioning, name, frames.shape[0], height, width)
        self.key_flow.check(frames)

    def _reference(self, frames: torch.Tensor, current: int, reference: int, rendered: torch.Tensor) -> Reference:
        """Key frame ``reference``'s rendered image moved onto key frame ``current``, with its masks."""
        flow, occluded = self.key_flow(frames, current, reference)
        return reference_from_flow(flow, occluded, rendered)

    # -- where the attention features live ----------------------------------------------------
    def _place_features(self, settings: CrossFrameAttention, frame_count: int, height: int, width: int) -> None:
        """Choose the attention store's place for this run, before the anchor pass fills it.

        The store grows during sampling, after the host has decided how much of the UNet fits, so
        under ``auto`` the host is asked for room for it first (it may offload other models).
        """
        device = torch.device(self.model.load_device)
        needed = estimate_feature_bytes(
            self.model.model.model_config.unet_config, settings, height // 8, width // 8, self.timesteps,
            self.sampling.cfg, frame_count, torch.empty(0, dtype=self.features.dtype).element_size(),
            cfg1_optimization=not self.model.model_options.get("disable_cfg1_optimization", False))
        asks_for_room = settings.feature_storage == "auto" and is_accelerator(device)
        free = make_room(needed, device) if asks_for_room else free_bytes(device)
        self.features.storage = choose_feature_storage(settings.feature_storage, needed, device.type, free,
                                                       USABLE_FRACTION)
        place = "in host RAM" if self.features.storage == IN_HOST_RAM else f"on {device}"
        log.info("%s: cross-frame attention stores about %.1f MiB of features (feature_storage %s, %.1f MiB free "
                 "on %s): kept %s.", NODE, needed / 2 ** 20, settings.feature_storage, free / 2 ** 20, device, place)

    # -- one sampling pass --------------------------------------------------------------------
    def _sample(self, hooks: FramePass, latent_image, noise, key_index: int, frame_count: int,
                pass_index: int = 0) -> torch.Tensor:
        sampler = comfy.samplers.KSAMPLER(ddim_sampler_function(hooks))
        positive = conditioning_for_frame(self.positive, key_index, frame_count)
        negative = conditioning_for_frame(self.negative, key_index, frame_count)
        base = self.steps_done

        def callback(step, x0, x, total):
            if self.on_step is not None:
                self.on_step(key_index, pass_index, step, x0)
            if self.report is not None:
                preview = self.previewer.decode_latent_to_preview_image("JPEG", x0) if self.previewer else None
                self.report(base + step + 1, self.steps_total, preview)

        try:
            return comfy.sample.sample_custom(self.model, noise, self.sampling.cfg, sampler, self.sigmas, positive,
                                              negative, latent_image, callback=callback, disable_pbar=True,
                                              seed=self.sampling.seed)
        finally:
            self.steps_done = base + self.sampling.steps
            if self.attention is not None:
                self.attention.mode = OFF

    # -- references and the pixel-fusion target -------------------------------------------------
    def _pixel_target(self, direct: torch.Tensor, previous: Reference, anchor: Reference) -> PixelTarget:
        fusion = self.constraints.pixel_fusion
        vae = fusion.vae.value
        # The references were decoded by the output VAE, ``direct`` by the fusion VAE: they may differ
        # in device or dtype.
        previous, anchor = previous.to(direct), anchor.to(direct)
        composite = composite_references(direct, previous.warped, previous.blend, anchor.warped, anchor.blend)
        seed = self.sampling.seed
        encoded = vae_encode(vae, composite, seed)
        re_encoded = vae_encode(vae, vae_decode(vae, encoded), seed).to(encoded)
        compensated = vae_decode(vae, encoded + (encoded - re_encoded))
        no_compensation = compensation_mask(compensated, composite.to(compensated)).to(encoded)
        if fusion.fuse_occluded:
            # Where neither reference shows the frame the composite holds the frame's own first render:
            # fused toward it at the same strength, every pixel of every key frame goes through the same
            # fusion, as the anchor does against its own render everywhere. Left unfused (the
            # reference's way) those pixels, and the anchor, stood apart from the rest.
            validity = torch.ones_like(encoded[:, :1])
        else:
            _, validity = blend_masks(previous.occluded * anchor.occluded)   # occluded in both references
            validity = validity.to(encoded)
        target = fidelity_target(encoded, re_encoded, no_compensation) * validity
        w, r = pixel_fusion_weights(validity, fusion.strength, fusion.detail, fusion.smooth_boundary)
        return PixelTarget(self.model.model.process_latent_in(target), w, r)

    # -- the whole run ------------------------------------------------------------------------
    def render(self, frames: torch.Tensor, anchor_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Render key frames.

        Args:
            frames: [N, 3, H, W] RGB in [0, 1], the first one the anchor; H and W divisible by 8.
            anchor_only: render only the anchor (to tune the look quickly).

        Returns:
            (images [N', 3, H, W] in [0, 1], latents [N', 4, H/8, W/8] unscaled VAE latents),
            N' = 1 with ``anchor_only``, else N.
        """
        self._check_frames(frames)
        count = 1 if anchor_only else frames.shape[0]
        constraints = self.constraints
        pixel_fusion = constraints.pixel_fusion
        self.steps_total = self.sampling.steps * count * (2 if pixel_fusion is not None else 1)
        cross = constraints.cross_frame_attention
        images, latents = [], []
        try:
            if cross is not None:
                self._place_features(cross, count, *frames.shape[-2:])
            anchor_image = previous_image = None
            for k in range(count):
                frame = frames[k:k + 1]
                latent_image = vae_encode(self.vae, frame, self.sampling.seed)
                noise = comfy.sample.prepare_noise(latent_image, self.sampling.seed)
                update = ATTEND_AND_UPDATE if cross is not None and cross.updates_previous(k) else ATTEND
                if k == 0:
                    # The anchor pass: key frame 0 with itself as anchor and previous, which is a plain
                    # render (attention on its own features is self-attention, fusing with itself a
                    # no-op); it records what the later key frames are constrained to.
                    latent = self._sample(FramePass(self, RECORD_ANCHOR, record_anchor=True),
                                          latent_image, noise, k, frames.shape[0])
                else:
                    anchor = previous = None
                    if constraints.shape_fusion is not None or pixel_fusion is not None:
                        anchor = self._reference(frames, k, 0, anchor_image)
                    if pixel_fusion is not None:
                        previous = anchor if k == 1 else self._reference(frames, k, k - 1, previous_image)
                    latent = self._sample(FramePass(self, update if pixel_fusion is None else ATTEND,
                                                    anchor_reference=anchor), latent_image, noise, k, frames.shape[0])
                if pixel_fusion is not None:
                    # Every key frame, the anchor's included, gets the fused second pass, as the
                    # reference's first output key frame is rendered against the anchor.
                    direct = vae_decode(pixel_fusion.vae.value, latent)
                    if k == 0:
                        anchor = previous = identity_reference(direct)
                        # The later key frames are fused against the anchor's plain render, as in the
                        # reference, not against its fused output: that would put two fused passes
                        # between them and the plain render, and one between it and the anchor.
                        anchor_image = vae_decode(self.vae, latent)
                    pixel = self._pixel_target(direct, previous, anchor)
                    latent = self._sample(FramePass(self, update, anchor_reference=anchor, pixel=pixel),
                                          latent_image, noise, k, frames.shape[0], pass_index=1)
                image = vae_decode(self.vae, latent)
                if anchor_image is None:
                    anchor_image = image
                previous_image = image
                images.append(image)
                latents.append(latent)
            return torch.cat(images), torch.cat(latents)
        finally:
            self.features.clear()
            self.anchor = AnchorMemory()
            comfy.model_management.soft_empty_cache()

    def stored_bytes(self) -> int:
        """Bytes held by the stored attention features and anchor latents right now."""
        anchor = sum(t.numel() * t.element_size() for t in self.anchor.x0.values())
        return self.features.nbytes() + anchor
