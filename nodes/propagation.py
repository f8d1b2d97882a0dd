"""RerenderPropagate: every frame from the rendered key frames."""
from __future__ import annotations

from dataclasses import replace

from ..host.devices import compute_device
from ..host.memory import is_accelerator, items_that_fit, release_cache, staging_tensor
from ..host.progress import progress_reporter
from ..propagation.guides import GuideWeights
from ..propagation.synthesis import SynthesisSettings
from ..propagation.video import PropagationSettings, device_bytes_per_chain, propagate_video
from ..video.keyframe_selection import KeyframeIndices
from .flow_inputs import FLOW_INPUTS, clip_flow, resolve_flow
from .images import image_to_frames
from .socket_types import CATEGORY, KEYFRAME_INDICES

DEFAULT_FLOW = "dis_medium"
# More chains per batch stop paying off once a GPU is busy; the CPU runs one at a time.
MOST_CHAINS_PER_BATCH = 8
# blend_weights → PropagationSettings.error_blend (0: the temporal weights alone, as the reference).
BLEND_WEIGHTS = {"distance and error": PropagationSettings.error_blend, "distance": 0.0}
DEFAULT_BLEND_WEIGHTS = "distance and error"
DEFAULT_SCREEN_TEXTURE = 1.0
DEFAULT_WARP_SHARE = PropagationSettings.warp_share


def _weight(default: float, what: str, rerender_default: float) -> tuple:
    return ("FLOAT", {"default": default, "min": 0.0, "max": 100.0, "step": 0.1,
                      "tooltip": f"Weight of the {what} guide (Rerender's default {rerender_default})."})


class RerenderPropagate:
    DESCRIPTION = ("Fill in every frame from the rendered key frames: each frame between two keys is synthesised "
                   "from both by guided patch synthesis (EbSynth-style, in PyTorch, on the GPU when there is one) "
                   "and the two are blended along the motion. Frames before the first or after the last key come "
                   "from that key alone.")
    CATEGORY = CATEGORY
    FUNCTION = "propagate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("Every frame of the clip in the key frames' style.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "Every frame of the original clip."}),
                "key_frames": ("IMAGE", {"tooltip": "The rendered (or hand-painted) key frames, in order, at the "
                                                    "frames' size."}),
                "key_indices": (KEYFRAME_INDICES, {"tooltip": "Which frames the key frames are (from Rerender: Select "
                                                              "Key Frames)."}),
                "blend": (["histogram", "histogram+poisson"], {
                    "default": "histogram",
                    "tooltip": "How the two propagations of a frame are merged: histogram-preserving blend in Lab, "
                               "optionally followed by gradient-domain (Poisson) fusion, which keeps edges crisper "
                               "but can leave artefacts in busy regions."}),
                "patch_size": ("INT", {"default": 5, "min": 3, "max": 15, "step": 2,
                                       "tooltip": "Side of the patches compared and copied (odd)."}),
                "uniformity": ("FLOAT", {"default": 3500.0, "min": 0.0, "max": 50000.0, "step": 100.0,
                                         "tooltip": "How strongly every part of the key frame is used evenly "
                                                    "(EbSynth's uniformity). Higher keeps more of the key's texture; "
                                                    "lower follows the guides more closely."}),
                "iterations": ("INT", {"default": 2, "min": 1, "max": 20,
                                       "tooltip": "Search-and-vote iterations per pyramid level. Each frame starts "
                                                  "from the previous frame's match, so few are needed."}),
                "color_weight": _weight(GuideWeights.color, "colour (the original frames)", 6.0),
                "edge_weight": _weight(GuideWeights.edge, "edge", 0.5),
                "temporal_weight": _weight(GuideWeights.temporal,
                                           "temporal (the previous result carried along the flow)", 0.5),
                "positional_weight": _weight(GuideWeights.positional,
                                             "positional (where each pixel came from in the key)", 2.0),
            },
            "optional": dict(FLOW_INPUTS, flow=(FLOW_INPUTS["flow"][0], {
                "tooltip": "Flow of the clip from Rerender Optical Flow (computed with DIS medium when not connected)."}),
                blend_weights=(list(BLEND_WEIGHTS), {
                    "default": DEFAULT_BLEND_WEIGHTS,
                    "tooltip": "How much of each propagation a pixel takes. 'distance and error': the nearer key "
                               "counts more, and so does the side whose patch matched better at that pixel "
                               "(sharper and closer to the style far from both keys). 'distance': the nearer key "
                               "alone decides, as the reference does."}),
                screen_texture=("FLOAT", {
                    "default": DEFAULT_SCREEN_TEXTURE, "min": 0.0, "max": 1.0, "step": 0.05,
                    "tooltip": "Keep texture that stays put on the screen (paper grain, canvas, a vignette) on the "
                               "screen: it is estimated from what the key frames share at the same place, taken "
                               "out before propagating and put back after, so it does not slide with the motion. "
                               "1: as estimated; 0: off, everything moves with the scene. Where the key frames "
                               "share nothing at a place, nothing changes there."}),
                warp_share=("FLOAT", {
                    "default": DEFAULT_WARP_SHARE, "min": 0.0, "max": 1.0, "step": 0.05,
                    "tooltip": "How much of each frame is its key frame carried along the optical flow, where the key "
                               "shows that spot; the rest is the patch synthesis. The synthesis picks its patches "
                               "afresh at every frame and the carried key never does, so their mix is closer to the "
                               "style and steadier. Lower it when the flow is poor (fast motion, blur); 0: the "
                               "synthesis alone, as EbSynth."})),
        }

    def propagate(self, frames, key_frames, key_indices, blend, patch_size, uniformity, iterations, color_weight,
                  edge_weight, temporal_weight, positional_weight, flow=None, optical_flow=None,
                  blend_weights=DEFAULT_BLEND_WEIGHTS, screen_texture=DEFAULT_SCREEN_TEXTURE,
                  warp_share=DEFAULT_WARP_SHARE):
        clip = image_to_frames(frames, "frames")
        keys = image_to_frames(key_frames, "key_frames")
        if not isinstance(key_indices, KeyframeIndices):
            raise ValueError("key_indices must come from Rerender: Select Key Frames.")
        key_indices.check_clip(clip.shape[0])
        if blend_weights not in BLEND_WEIGHTS:
            raise ValueError(f"blend_weights must be one of {', '.join(BLEND_WEIGHTS)} (got {blend_weights!r}).")
        if not 0 <= screen_texture <= 1:
            raise ValueError(f"screen_texture must be between 0 (off) and 1 (got {screen_texture}).")
        if not 0 <= warp_share <= 1:
            raise ValueError(f"warp_share must be between 0 (the synthesis alone) and 1 (got {warp_share}).")
        if patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd (got {patch_size}).")
        if flow is None and optical_flow is None:
            video_flow = clip_flow(clip, DEFAULT_FLOW)
        else:
            video_flow = resolve_flow(flow, optical_flow, clip)
        device = compute_device()
        settings = PropagationSettings(
            synthesis=SynthesisSettings(patch_size=patch_size, uniformity=uniformity, search_vote_iterations=iterations,
                                        descriptor_dims=8),
            weights=GuideWeights(color_weight, edge_weight, temporal_weight, positional_weight),
            poisson=blend == "histogram+poisson", error_blend=BLEND_WEIGHTS[blend_weights],
            screen_texture=screen_texture, warp_share=warp_share)
        if is_accelerator(device):
            # The host offloads earlier models as it sees fit; the batch is sized from what is then free.
            per_chain = device_bytes_per_chain(*clip.shape[-2:], settings)
            settings = replace(settings, chains_per_batch=items_that_fit(per_chain, device, most=MOST_CHAINS_PER_BATCH))
        try:
            output = propagate_video(staging_tensor(clip, device), list(key_indices.indices), staging_tensor(keys, device),
                                     video_flow, settings, on_progress=progress_reporter(1), device=device)
        finally:
            release_cache()
        # propagate_video fills a channels-last buffer, clamped: it is the IMAGE as it is, no copy.
        return (output.movedim(1, -1),)


NODE_CLASS_MAPPINGS = {"RerenderPropagate": RerenderPropagate}
NODE_DISPLAY_NAME_MAPPINGS = {"RerenderPropagate": "Rerender: Propagate Key Frames"}
