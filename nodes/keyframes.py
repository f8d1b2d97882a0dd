"""Key-frame translation: the four constraint nodes and the key-frame sampler."""
from __future__ import annotations

from contextlib import nullcontext

from ..host.devices import compute_device
from ..host.progress import progress_reporter
from ..host.sampling import schedulers
from ..keyframes.references import ComposedKeyFlow
from ..keyframes.renderer import KeyframeRenderer, SamplingSettings
from ..keyframes.settings import (FEATURE_STORAGE_CHOICES, ColorAdaIN, CrossFrameAttention, PixelFusion, Shared,
                                  ShapeFusion, StepRange, with_constraint)
from ..video.keyframe_selection import KeyframeIndices
from .flow_inputs import FLOW_INPUTS, flow_estimator, flow_methods, resolve_flow
from .images import frames_to_image, image_to_frames
from .socket_types import CATEGORY, KEYFRAME_INDICES

CONSTRAINTS = f"{CATEGORY}/constraints"
RANGE_NOTE = ("start and end are positions on the reference's full 20-step schedule, by noise level: 0 is its "
              "first step (timestep t = 951, nearly pure noise), its step i of 20 sits at i/20 (t = 951 - 50*i), "
              "1 is the clean end. A step of this run is active when its timestep t lies in the range, "
              "951 - 1000*end <= t <= 951 - 1000*start (any t above 951 counts as 0), so the constraint acts "
              "at the reference's noise levels at any steps, scheduler and denoise. A denoise below 1 skips "
              "the noisiest part of the schedule, and a range lying there does nothing. start > end switches "
              "it off.")


def step_range(default_start: float, default_end: float, what: str, defaults_note: str) -> dict:
    return {
        "start": ("FLOAT", {"default": default_start, "min": 0.0, "max": 1.0, "step": 0.01,
                            "tooltip": f"Where {what} starts acting, on the full schedule (0 = the noisiest step). "
                                       f"{defaults_note} {RANGE_NOTE}"}),
        "end": ("FLOAT", {"default": default_end, "min": 0.0, "max": 1.0, "step": 0.01,
                          "tooltip": f"Where {what} stops acting, on the full schedule (1 = the end): it acts "
                                     "down to timestep t = 951 - 1000*end."}),
    }


class _ConstraintNode:
    CATEGORY = CONSTRAINTS
    FUNCTION = "patch"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The same model carrying this constraint. It takes effect in Rerender Keyframes; "
                       "any other sampler ignores it.",)
    MODEL_INPUT = {"model": ("MODEL", {"tooltip": "An SD1.5 model (with any LoRA / FreeU applied)."})}


class RerenderCrossFrameAttention(_ConstraintNode):
    DESCRIPTION = ("Style-aware cross-frame attention: in the decoder's self-attention every key frame attends to "
                   "the anchor (first) and the previous key frame instead of itself, so textures and style carry "
                   "over. Costs about 1 GB of stored features per 512x512 run (half precision), kept on the GPU "
                   "or in RAM (feature_storage).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **cls.MODEL_INPUT,
            **step_range(0.0, 1.0, "cross-frame attention",
                         "The default 0-1 is every step, as in the reference."),
            "loose": ("BOOLEAN", {"default": False, "tooltip": "Only the 640- and 320-channel decoder layers: "
                                  "looser style binding, better for large motion."}),
            "previous_update_interval": ("INT", {
                "default": 1, "min": 0, "max": 1000,
                "tooltip": "Every how many key frames the 'previous' reference moves on (1 = every key frame). "
                           "0 keeps the anchor as the only reference. Larger values limit drift on long clips."}),
        }, "optional": {
            "feature_storage": (list(FEATURE_STORAGE_CHOICES), {
                "default": "auto",
                "tooltip": "Where the stored features live while the key frames render. auto: on the GPU when "
                           "the host can make room for them, else in RAM; device: always on the model's device "
                           "(fastest); cpu: always in RAM (saves GPU memory, a little slower)."}),
        }}

    def patch(self, model, start, end, loose, previous_update_interval, feature_storage="auto"):
        settings = CrossFrameAttention(StepRange(start, end), loose, previous_update_interval, feature_storage)
        return (with_constraint(model, settings),)


class RerenderShapeFusion(_ConstraintNode):
    DESCRIPTION = ("Shape-aware latent fusion: during the early, noisiest steps the anchor's predicted clean latent, "
                   "warped by optical flow, is pasted where the anchor shows the same content. Keeps shapes in place. "
                   "Its default range lies in the part of the schedule a denoise below about 0.87 skips, so it "
                   "acts only at a high denoise, as in the reference.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**cls.MODEL_INPUT, **step_range(
            0.0, 0.1, "shape-aware fusion",
            "The default 0-0.1 is the reference's first 10 % (its steps 0-2, t 951-851): with 20 ddim_uniform "
            "steps only a denoise of about 0.87 or more reaches it, so at the default 0.75 shape fusion does "
            "nothing, as in the reference.")}}

    def patch(self, model, start, end):
        return (with_constraint(model, ShapeFusion(StepRange(start, end))),)


class RerenderPixelFusion(_ConstraintNode):
    DESCRIPTION = ("Pixel-aware latent fusion: a second pass per key frame in which the anchor's and previous key "
                   "frame's outputs, warped to the frame, are blended into the latent during the middle steps, "
                   "encoded fidelity-first. The strongest consistency constraint; doubles the sampling time.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **cls.MODEL_INPUT,
            "vae": ("VAE", {"tooltip": "Encodes the warped references (fidelity-oriented encoding)."}),
            **step_range(0.55, 0.75, "pixel-aware fusion",
                         "The default 0.55-0.75 is t 401-201, the reference's steps 11-15 (its period 0.5-0.8, "
                         "exclusive)."),
            "strength": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                                   "tooltip": "Weight of the warped references in the latent (the reference's "
                                              "mask strength). Lower it if errors accumulate over long clips."}),
            "detail": ("FLOAT", {"default": 0.9, "min": 0.5, "max": 1.0, "step": 0.01,
                                 "tooltip": "How much of the model's own noise direction is kept inside the "
                                            "fused region (the reference's inner strength): higher keeps more detail."}),
            "smooth_boundary": ("BOOLEAN", {"default": True,
                                            "tooltip": "Blend linearly at the edges of the fused region to avoid "
                                                       "seams (matters with fuse_occluded off: on, every pixel is "
                                                       "fused and the region has no edges)."}),
        }, "optional": {
            "fuse_occluded": ("BOOLEAN", {
                "default": True,
                "tooltip": "Also fuse the pixels that neither reference shows (new content, the frame's edges), "
                           "toward this key frame's own first render, as the anchor is fused toward its own "
                           "render everywhere: every pixel goes through the same fusion, so key frames agree "
                           "better. Off: the reference's way, those pixels are left unfused."}),
        }}

    def patch(self, model, vae, start, end, strength, detail, smooth_boundary, fuse_occluded=True):
        settings = PixelFusion(StepRange(start, end), Shared(vae), strength, detail, smooth_boundary, fuse_occluded)
        return (with_constraint(model, settings),)


class RerenderColorAdaIN(_ConstraintNode):
    DESCRIPTION = ("Colour-aware AdaIN: during the late steps each key frame's predicted latent takes the anchor's "
                   "per-channel mean and spread at the same step, so colours follow the anchor. Turn it off if "
                   "colours jitter.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**cls.MODEL_INPUT, **step_range(
            0.8, 1.0, "AdaIN", "The default 0.8-1 is t 151 and below, the reference's steps 16-19.")}}

    def patch(self, model, start, end):
        return (with_constraint(model, ColorAdaIN(StepRange(start, end))),)


class RerenderKeyframes:
    DESCRIPTION = ("Render key frames one after another with Stable Diffusion 1.5 under the cross-frame constraints "
                   "attached to the model (Rerender A Video). The first key frame is the anchor that fixes the look; "
                   "use anchor_only to tune prompt and settings on it first.")
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "LATENT")
    RETURN_NAMES = ("images", "latents")
    OUTPUT_TOOLTIPS = ("The rendered key frames (only the anchor with anchor_only).",
                       "Their latents (VAE latent space).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "SD1.5 model, patched with the Rerender constraint nodes you want."}),
            "positive": ("CONDITIONING", {"tooltip": "Prompt. A ControlNet applied with one control image per key "
                                                     "frame conditions frame i on control image i."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative prompt."}),
            "vae": ("VAE", {"tooltip": "Encodes the key frames and decodes the results."}),
            "key_frames": ("IMAGE", {"tooltip": "The key frames in order; the first is the anchor. Sides must be "
                                                "divisible by 8."}),
            "flow_method": (flow_methods(), {"default": "dis_medium",
                                             "tooltip": "Optical flow between key frames for shape and pixel fusion, "
                                                        "estimated directly between them. Not used when the clip's "
                                                        "flow is connected."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff,
                             "tooltip": "The same noise is used for every key frame."}),
            "steps": ("INT", {"default": 20, "min": 2, "max": 200, "tooltip": "DDIM steps actually run per pass."}),
            "cfg": ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                              "tooltip": "Classifier-free guidance scale."}),
            "scheduler": (schedulers(), {"default": "ddim_uniform",
                                         "tooltip": "Sigma schedule; ddim_uniform is the reference's DDIM spacing."}),
            "denoise": ("FLOAT", {"default": 0.75, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "How much of each key frame is re-imagined (the reference's x0 "
                                             "strength). 1 ignores the frame's colours but keeps ControlNet's shapes. "
                                             "The constraints act at the same noise levels at any denoise; below "
                                             "about 0.87 (20 steps) the noisy start where shape fusion acts is skipped."}),
            "anchor_only": ("BOOLEAN", {"default": False,
                                        "tooltip": "Render only the anchor, to tune the look before the whole run."}),
        }, "optional": {
            "flow": (FLOW_INPUTS["flow"][0], {
                "tooltip": "The whole clip's flow (Rerender: Optical Flow on the frames the key frames were selected "
                           "from). With it and key_indices, the flow from each key frame to the anchor and to the "
                           "previous key frame is chained from the clip's frame-to-frame flows instead of estimated "
                           "directly between frames far apart: with DIS far more accurate on large motion (RAFT's "
                           "direct flow can be better still). Replaces flow_method."}),
            "optical_flow": (FLOW_INPUTS["optical_flow"][0], {
                "tooltip": "Or: the clip's OPTICAL_FLOW from comfyui_controlnet_aux's Unimatch Optical Flow node "
                           "(forward direction assumed; the backward one is derived by inversion)."}),
            "key_indices": (KEYFRAME_INDICES, {
                "tooltip": "Which clip frames the key frames are (Select Key Frames' key_indices): needed with "
                           "flow or optical_flow."}),
        }}

    def render(self, model, positive, negative, vae, key_frames, flow_method, seed, steps, cfg, scheduler, denoise,
               anchor_only, flow=None, optical_flow=None, key_indices=None):
        frames = image_to_frames(key_frames, "key_frames")
        sampling = SamplingSettings(seed, steps, cfg, scheduler, denoise)
        clip_flow = composed_key_flow(flow, optical_flow, key_indices)
        # With the clip's flow connected no flow is estimated here (and no RAFT loaded for nothing).
        with flow_estimator(flow_method) if clip_flow is None else nullcontext() as estimator:
            renderer = KeyframeRenderer(model, vae, positive, negative, estimator, sampling,
                                        report=progress_reporter(steps), clip_flow=clip_flow)
            images, latents = renderer.render(frames, anchor_only)
        return frames_to_image(images), {"samples": latents}


def composed_key_flow(flow, optical_flow, key_indices) -> ComposedKeyFlow | None:
    """The key-to-key flow from the clip's flow sockets, or None (flow estimated between key frames)."""
    if flow is None and optical_flow is None:
        if key_indices is not None:
            raise ValueError("key_indices is connected but no flow is: connect the clip's flow (Rerender: Optical "
                             "Flow on the whole clip) too, or disconnect key_indices.")
        return None
    if key_indices is None:
        raise ValueError("The clip's flow is connected but key_indices is not: connect the key_indices of the "
                         "Select Key Frames node that gave key_frames, so each key frame's place in the clip is known.")
    if not isinstance(key_indices, KeyframeIndices):
        raise ValueError(f"key_indices must be the key_indices output of Rerender: Select Key Frames; got "
                         f"{type(key_indices).__name__}.")
    video_flow = resolve_flow(flow, optical_flow)
    key_indices.check_clip(video_flow.frame_count, "the frames of the flow")
    return ComposedKeyFlow(video_flow, key_indices.indices, device=compute_device())


NODE_CLASS_MAPPINGS = {
    "RerenderCrossFrameAttention": RerenderCrossFrameAttention,
    "RerenderShapeFusion": RerenderShapeFusion,
    "RerenderPixelFusion": RerenderPixelFusion,
    "RerenderColorAdaIN": RerenderColorAdaIN,
    "RerenderKeyframes": RerenderKeyframes,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RerenderCrossFrameAttention": "Rerender: Cross-Frame Attention",
    "RerenderShapeFusion": "Rerender: Shape-Aware Fusion",
    "RerenderPixelFusion": "Rerender: Pixel-Aware Fusion",
    "RerenderColorAdaIN": "Rerender: Colour AdaIN",
    "RerenderKeyframes": "Rerender: Keyframes",
}
