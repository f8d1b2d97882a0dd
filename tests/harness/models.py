"""Random-weight SD1.5 models for tests (no weights can be downloaded here or in CI).

* A tiny SD1.5-shaped UNet (same block layout, 32 base channels, 32-dim context) and a tiny
  VAE, built with the host's own classes and wrapped in the host's ModelPatcher / VAE: fast
  enough to sample on two CPU cores.
* Full-size SD1.5 checkpoint (UNet + CLIP-L + VAE) and SD1.5 ControlNet files in the original
  key layouts that ``CheckpointLoaderSimple`` and ``ControlNetLoader`` detect, written once to a
  cache folder and reused between runs.

Weights are drawn with a fixed seed: normal(0, 1/sqrt(fan_in)) for matrices and kernels, one
for norm scales, zero for biases, which keeps activations at unit scale through the network.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

# Bump when the generated files change, so stale caches are rebuilt.
FIXTURE_VERSION = "1"

SD15_UNET_CONFIG = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
    "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
    "context_dim": 768, "num_heads": 8, "num_head_channels": -1,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_temporal_attention": False, "use_temporal_resblock": False,
}
TINY_CONTEXT_DIM = 32
TINY_UNET_CONFIG = dict(SD15_UNET_CONFIG, model_channels=32, context_dim=TINY_CONTEXT_DIM)

SD_VAE_DDCONFIG = {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
}
TINY_VAE_DDCONFIG = dict(SD_VAE_DDCONFIG, ch=32, num_res_blocks=1)

CLIP_L_LAYERS, CLIP_L_WIDTH, CLIP_L_MLP, CLIP_L_VOCAB, CLIP_L_POSITIONS = 12, 768, 3072, 49408, 77


def random_like_layout(shapes: dict[str, tuple[int, ...]], seed: int, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Unit-scale random tensors for a state-dict layout (name -> shape)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith("position_ids"):
            out[name] = torch.arange(shape[-1], dtype=torch.int64).reshape(shape)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            out[name] = (torch.randn(shape, generator=generator) / math.sqrt(fan_in)).to(dtype)
        elif name.endswith("bias"):
            out[name] = torch.zeros(shape, dtype=dtype)
        else:
            out[name] = torch.ones(shape, dtype=dtype)
    return out


def _layout(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _meta_layout(build) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return _layout(build())


def _unet(config: dict) -> torch.nn.Module:
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    return UNetModel(**config)


def _autoencoder(ddconfig: dict) -> torch.nn.Module:
    from comfy.ldm.models.autoencoder import AutoencoderKL

    return AutoencoderKL(ddconfig=ddconfig, embed_dim=ddconfig["z_channels"])


def _controlnet() -> torch.nn.Module:
    from comfy.cldm.cldm import ControlNet

    config = {k: v for k, v in SD15_UNET_CONFIG.items() if k != "out_channels"}
    return ControlNet(hint_channels=3, **config)


def clip_l_layout() -> dict[str, tuple[int, ...]]:
    """CLIP ViT-L/14 text encoder, as stored under ``cond_stage_model.transformer.`` in SD1.5."""
    w, m = CLIP_L_WIDTH, CLIP_L_MLP
    layout = {
        "text_model.embeddings.token_embedding.weight": (CLIP_L_VOCAB, w),
        "text_model.embeddings.position_embedding.weight": (CLIP_L_POSITIONS, w),
        "text_model.embeddings.position_ids": (1, CLIP_L_POSITIONS),
        "text_model.final_layer_norm.weight": (w,),
        "text_model.final_layer_norm.bias": (w,),
    }
    for i in range(CLIP_L_LAYERS):
        p = f"text_model.encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            layout[p + f"self_attn.{proj}.weight"] = (w, w)
            layout[p + f"self_attn.{proj}.bias"] = (w,)
        for norm in ("layer_norm1", "layer_norm2"):
            layout[p + f"{norm}.weight"] = (w,)
            layout[p + f"{norm}.bias"] = (w,)
        layout[p + "mlp.fc1.weight"] = (m, w)
        layout[p + "mlp.fc1.bias"] = (m,)
        layout[p + "mlp.fc2.weight"] = (w, m)
        layout[p + "mlp.fc2.bias"] = (w,)
    return layout


def _prefixed(prefix: str, layout: dict) -> dict:
    return {prefix + k: v for k, v in layout.items()}


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_sd15_checkpoint(path: Path, seed: int = 1) -> Path:
    """A full-size SD1.5 checkpoint (original layout, fp16 safetensors) with random weights."""
    from safetensors.torch import save_file

    layout = {}
    layout.update(_prefixed("model.diffusion_model.", _meta_layout(lambda: _unet(SD15_UNET_CONFIG))))
    layout.update(_prefixed("first_stage_model.", _meta_layout(lambda: _autoencoder(SD_VAE_DDCONFIG))))
    layout.update(_prefixed("cond_stage_model.transformer.", clip_l_layout()))
    tensors = random_like_layout(layout, seed, torch.float16)
    metadata = {"rerender_test_fixture": "random weights, not a real model", "version": FIXTURE_VERSION}
    _atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata))
    return path


def write_sd15_controlnet(path: Path, seed: int = 2) -> Path:
    """A full-size SD1.5 ControlNet (ControlNet-v1.1 ``control_model.`` layout, .pth) with random weights.

    The zero convolutions are random too, so the control image visibly changes the output.
    """
    layout = _prefixed("control_model.", _meta_layout(_controlnet))
    tensors = random_like_layout(layout, seed, torch.float16)
    _atomic_write(path, lambda p: torch.save(tensors, str(p)))
    return path


class ModelCache:
    """The folder of full-size random models, in the host's model-folder layout."""

    CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
    CONTROLNET = "control_v11p_sd15_canny.pth"

    def __init__(self, root: Path):
        self.root = root / f"v{FIXTURE_VERSION}"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def controlnet(self) -> Path:
        return self.root / "controlnet"

    def checkpoint(self) -> Path:
        path = self.checkpoints / self.CHECKPOINT
        return path if path.exists() else write_sd15_checkpoint(path)

    def controlnet_file(self) -> Path:
        path = self.controlnet / self.CONTROLNET
        return path if path.exists() else write_sd15_controlnet(path)

    def ensure_all(self) -> None:
        self.checkpoint()
        self.controlnet_file()


def tiny_sd15(seed: int = 0):
    """A tiny SD1.5-shaped model in the host's ModelPatcher (CPU, float32)."""
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    model_config = comfy.supported_models.SD15(dict(TINY_UNET_CONFIG))
    model_config.set_inference_dtype(torch.float32, None)
    base = comfy.model_base.BaseModel(model_config, device=torch.device("cpu"))
    weights = random_like_layout(_layout(base.diffusion_model), seed)
    base.diffusion_model.load_state_dict(weights)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=torch.device("cpu"))


def tiny_vae(seed: int = 0):
    """A tiny SD-layout VAE (×8 down-sampling, 4 latent channels) in the host's VAE wrapper."""
    import comfy.sd

    weights = random_like_layout(_meta_layout(lambda: _autoencoder(TINY_VAE_DDCONFIG)), seed)
    return comfy.sd.VAE(sd=weights, config={"params": {"ddconfig": TINY_VAE_DDCONFIG,
                                                       "embed_dim": TINY_VAE_DDCONFIG["z_channels"]}})


def tiny_conditioning(seed: int, tokens: int = 77):
    """A CONDITIONING list for the tiny model: one random text embedding."""
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, TINY_CONTEXT_DIM, generator=generator), {}]]
