"""Constraint settings as the patch nodes attach them to a MODEL.

Each constraint node clones the model and records its settings under
``model_options["rerender"]``; nothing else about the model changes, so a patched model samples
exactly as before in any other sampler. RerenderKeyframes reads the settings and activates the
constraints for its own run.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .constraints import timestep_active

OPTIONS_KEY = "rerender"
# SD1.5 decoder self-attention sits in output blocks 3-11: 1280 channels (3-5), 640 (6-8), 320 (9-11).
DECODER_ATTENTION_BLOCKS = tuple(range(3, 12))
LOOSE_ATTENTION_BLOCKS = tuple(range(6, 12))
# Where the stored attention features live: decided per run, kept on the model's device, or in host RAM.
FEATURE_STORAGE_CHOICES = ("auto", "device", "cpu")


class Shared:
    """Carries an object (the VAE) through ModelPatcher.clone(), which deep-copies model_options."""

    def __init__(self, value):
        self.value = value

    def __deepcopy__(self, memo):
        return self


@dataclass(frozen=True)
class StepRange:
    """Where a constraint acts, as positions on the reference's full 20-step schedule.

    A step is active when its diffusion timestep t has start ≤ (951 − t) / 1000 ≤ end (see
    ``constraints.schedule_position``): the reference's step i of 20 sits at i / 20, so the
    reference's period fractions act at its noise levels at any step count and denoise.
    start > end: never.
    """

    start: float
    end: float

    def active(self, timestep: float) -> bool:
        return timestep_active(timestep, self.start, self.end)


@dataclass(frozen=True)
class CrossFrameAttention:
    steps: StepRange
    loose: bool = False
    previous_update_interval: int = 1
    feature_storage: str = "auto"

    def __post_init__(self):
        if self.feature_storage not in FEATURE_STORAGE_CHOICES:
            raise ValueError(f"feature_storage is {self.feature_storage!r}: choose one of "
                             f"{', '.join(FEATURE_STORAGE_CHOICES)}.")

    @property
    def blocks(self) -> tuple[int, ...]:
        return LOOSE_ATTENTION_BLOCKS if self.loose else DECODER_ATTENTION_BLOCKS

    def updates_previous(self, key_index: int) -> bool:
        """Whether key frame ``key_index`` (0 = anchor) becomes the new 'previous' reference."""
        interval = self.previous_update_interval
        return interval > 0 and key_index % interval == 0


@dataclass(frozen=True)
class ShapeFusion:
    steps: StepRange


@dataclass(frozen=True)
class PixelFusion:
    steps: StepRange
    vae: Shared
    strength: float = 0.5
    detail: float = 0.9
    smooth_boundary: bool = True
    # Fuse the pixels neither reference shows too, toward the frame's own first render (a departure
    # from the reference, which leaves them unfused; see the README's sweep).
    fuse_occluded: bool = True


@dataclass(frozen=True)
class ColorAdaIN:
    steps: StepRange


@dataclass(frozen=True)
class Constraints:
    cross_frame_attention: CrossFrameAttention | None = None
    shape_fusion: ShapeFusion | None = None
    pixel_fusion: PixelFusion | None = None
    color_adain: ColorAdaIN | None = None


_NAMES = {CrossFrameAttention: "cross_frame_attention", ShapeFusion: "shape_fusion",
          PixelFusion: "pixel_fusion", ColorAdaIN: "color_adain"}


def constraints_of(model) -> Constraints:
    """The constraints attached to a ModelPatcher (none if no constraint node touched it)."""
    return model.model_options.get(OPTIONS_KEY) or Constraints()


def with_constraint(model, settings):
    """A clone of ``model`` that also carries ``settings`` (replacing an earlier one of its kind)."""
    patched = model.clone()
    current = constraints_of(patched)
    patched.model_options[OPTIONS_KEY] = replace(current, **{_NAMES[type(settings)]: settings})
    return patched
