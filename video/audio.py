"""Sound in ComfyUI's AUDIO form: ``{"waveform": float32 [1, channels, samples], "sample_rate": int}``.

Never imports ComfyUI. Samples are in [-1, 1]; the batch dimension is ComfyUI's and always 1 here.
"""
from __future__ import annotations

import torch

# A clip without sound gets silence at this rate (the host's own audio nodes default to 44.1 kHz).
SILENT_SAMPLE_RATE = 44100


def audio(waveform: torch.Tensor, sample_rate: int) -> dict:
    """Wrap ``waveform`` [channels, samples] as an AUDIO dict (float32, batch of one, on the CPU)."""
    return {"waveform": waveform.float().cpu().contiguous()[None], "sample_rate": int(sample_rate)}


def silent_audio(duration_s: float, sample_rate: int = SILENT_SAMPLE_RATE) -> dict:
    """An AUDIO of mono silence lasting ``duration_s`` (what Load Video gives for a clip without sound)."""
    return audio(torch.zeros(1, sample_count(duration_s, sample_rate)), sample_rate)


def sample_count(duration_s: float, sample_rate: int) -> int:
    return max(0, round(duration_s * sample_rate))


def fit_samples(waveform: torch.Tensor, samples: int) -> torch.Tensor:
    """Cut [channels, S] to ``samples``, or pad it with silence at the end."""
    if waveform.shape[-1] >= samples:
        return waveform[..., :samples]
    return torch.nn.functional.pad(waveform, (0, samples - waveform.shape[-1]))


def check_audio(value, name: str = "audio") -> tuple[torch.Tensor, int]:
    """Validate an AUDIO input; return (waveform [channels, samples] float32 CPU, sample rate).

    Raises:
        ValueError: naming ``name`` when it is not an AUDIO dict a video can carry.
    """
    if not isinstance(value, dict) or "waveform" not in value or "sample_rate" not in value:
        raise ValueError(f"{name} must be an AUDIO (a dict with 'waveform' and 'sample_rate', as Load Video or "
                         f"Load Audio give); got {type(value).__name__}.")
    waveform, rate = value["waveform"], value["sample_rate"]
    if not isinstance(waveform, torch.Tensor) or waveform.ndim not in (2, 3) or waveform.shape[-2] < 1:
        shape = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise ValueError(f"{name}: the waveform must be [batch, channels, samples]; got {shape}.")
    if not isinstance(rate, (int, float)) or rate <= 0:
        raise ValueError(f"{name}: the sample rate must be a positive number of Hz; got {rate!r}.")
    if waveform.ndim == 3:
        waveform = waveform[0]   # a video carries one soundtrack: the first of a batch
    if waveform.shape[0] > 8:
        raise ValueError(f"{name} has {waveform.shape[0]} channels; AAC carries at most 8: mix it down first.")
    return waveform.float().cpu(), int(rate)
