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
FIXTURE_VERSION = "2"

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


def realistic_posterior(weights: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Give a random VAE the tiny posterior variance of real SD VAEs (log-variance about -10), so
    a host that samples the posterior gets essentially its mean, as with real weights."""
    weight, bias = weights[prefix + "quant_conv.weight"], weights[prefix + "quant_conv.bias"]
    half = weight.shape[0] // 2
    weight[half:] = 0
    bias[half:] = -10
    return weights


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
    tensors = realistic_posterior(random_like_layout(layout, seed, torch.float16), "first_stage_model.")
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
    """The folder of full-size random models, in the host's model-folder layout, named as the
    shipped workflows expect."""

    CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
    CONTROLNET = "control_v11p_sd15_canny.pth"
    TILE_CONTROLNET = "control_v11f1e_sd15_tile.pth"
    LORA = "sd15_style_lora.safetensors"

    def __init__(self, root: Path):
        self.root = root / f"v{FIXTURE_VERSION}"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def controlnet(self) -> Path:
        return self.root / "controlnet"

    @property
    def loras(self) -> Path:
        return self.root / "loras"

    def folders(self) -> dict[str, Path]:
        """Model kind → folder, for extra_model_paths / folder_paths."""
        return {"checkpoints": self.checkpoints, "controlnet": self.controlnet, "loras": self.loras}

    def checkpoint(self) -> Path:
        path = self.checkpoints / self.CHECKPOINT
        return path if path.exists() else write_sd15_checkpoint(path)

    def controlnet_file(self, name: str = CONTROLNET) -> Path:
        path = self.controlnet / name
        return path if path.exists() else write_sd15_controlnet(path, seed=2 if name == self.CONTROLNET else 4)

    def lora(self) -> Path:
        path = self.loras / self.LORA
        if not path.exists():
            write_random_lora(path, _meta_layout(lambda: _unet(SD15_UNET_CONFIG)), scale=0.05)
        return path

    def ensure_all(self) -> None:
        self.checkpoint()
        self.controlnet_file()
        self.controlnet_file(self.TILE_CONTROLNET)
        self.lora()


def tiny_sd15(seed: int = 0, dtype: torch.dtype = torch.float32, manual_cast_dtype: torch.dtype | None = None):
    """A tiny SD1.5-shaped model in the host's ModelPatcher (CPU).

    Args:
        dtype: the UNet's weight dtype (``torch.bfloat16`` for a bf16 UNet).
        manual_cast_dtype: compute dtype when it differs from the weights' (the host's manual cast,
            e.g. fp16 weights computed in float32); None computes in ``dtype``.
    """
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    model_config = comfy.supported_models.SD15(dict(TINY_UNET_CONFIG))
    model_config.set_inference_dtype(dtype, manual_cast_dtype)
    base = comfy.model_base.BaseModel(model_config, device=torch.device("cpu"))
    weights = random_like_layout(_layout(base.diffusion_model), seed)
    base.diffusion_model.load_state_dict(weights)
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=torch.device("cpu"))


def tiny_controlnet(dtype: torch.dtype = torch.float16, seed: int = 5):
    """A ControlNet matching the tiny UNet, weights in ``dtype`` computed in float32 (the host's manual
    cast), in the host's ControlNet wrapper: what ControlNetLoader makes of an fp16 file on a device
    without fast fp16. The zero convolutions are random, so the control image changes the output."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.model_management
    import comfy.ops

    config = {k: v for k, v in TINY_UNET_CONFIG.items() if k != "out_channels"}
    control_model = comfy.cldm.cldm.ControlNet(hint_channels=3, dtype=dtype, device=torch.device("cpu"),
                                               operations=comfy.ops.manual_cast, **config)
    control_model.load_state_dict(random_like_layout(_layout(control_model), seed, dtype))
    return comfy.controlnet.ControlNet(control_model, global_average_pooling=False,
                                       load_device=comfy.model_management.get_torch_device(),
                                       manual_cast_dtype=torch.float32)


def tiny_vae(seed: int = 0):
    """A tiny SD-layout VAE (×8 down-sampling, 4 latent channels) in the host's VAE wrapper."""
    import comfy.sd

    weights = realistic_posterior(random_like_layout(_meta_layout(lambda: _autoencoder(TINY_VAE_DDCONFIG)), seed))
    return comfy.sd.VAE(sd=weights, config={"params": {"ddconfig": TINY_VAE_DDCONFIG,
                                                       "embed_dim": TINY_VAE_DDCONFIG["z_channels"]}})


# The smoothing autoencoder: an SD-layout VAE whose weights are set, not trained.
SMOOTH_VAE_DDCONFIG = dict(SD_VAE_DDCONFIG, ch=128, num_res_blocks=1)
_K = 500.0     # offset of the channels entering the output GroupNorms (residual gain error ~ c²/K²)
_LIFT = 20.0   # shift into SiLU's linear range before the output convolutions
_SCALE = 14.0  # latent units per image unit: 0.18215-scaled latents of textures have about unit spread


def smoothing_autoencoder_weights() -> dict[str, torch.Tensor]:
    """Weights for the host's AutoencoderKL (ch 128) that make it a translation-equivariant,
    nearly linear autoencoder: it encodes by filtered 8x down-sampling of the RGB channels and
    decodes by smooth (nearest + tent) up-sampling.

    Residual and attention branches are zero. A GroupNorm normalises by its group's mean and
    spread, which would make any map through it scale-invariant; so just before each output
    GroupNorm a 1x1 layer turns every colour channel c into the pair (K + c, K − c) inside a group
    of otherwise zero channels. The group's mean is then constant and its spread constant up to
    O(c²/K²), so the norm is a fixed affine map that the norm's own scale and shift undo.
    A random-weight VAE scrambles sub-8-pixel motion; this one keeps it, which tests of temporal
    consistency need.
    """
    layout = _meta_layout(lambda: _autoencoder(SMOOTH_VAE_DDCONFIG))
    w = {name: torch.zeros(shape) for name, shape in layout.items()}
    tent = torch.tensor([1.0, 2.0, 1.0]) / 4
    box = torch.zeros(3, 3)
    box[:2, :2] = 0.25   # never reads the zero row/column the down-sampler pads with
    encoder_channels, decoder_channels = (0, 2, 4), (0, 4, 8)   # one decoder norm group (4 channels) each
    for name, tensor in w.items():
        if name.endswith(("norm1.weight", "norm2.weight", "attn_1.norm.weight")):
            tensor.fill_(1)
    for j, (e, d) in enumerate(zip(encoder_channels, decoder_channels)):
        w["encoder.conv_in.weight"][e, j, 1, 1] = 1
        w["encoder.down.0.downsample.conv.weight"][e, e] = torch.outer(tent, tent)
        w["encoder.down.1.block.0.nin_shortcut.weight"][e, e, 0, 0] = 1
        w["encoder.down.1.downsample.conv.weight"][e, e] = torch.outer(tent, tent)
        nin = "encoder.down.2.block.0.nin_shortcut"   # the pair (K + c, K − c) from here on
        w[nin + ".weight"][e, e, 0, 0], w[nin + ".bias"][e] = 1, _K
        w[nin + ".weight"][e + 1, e, 0, 0], w[nin + ".bias"][e + 1] = -1, _K
        w["encoder.down.2.downsample.conv.weight"][e, e] = box
        w["encoder.down.2.downsample.conv.weight"][e + 1, e + 1] = box
        w["encoder.conv_out.weight"][j, e, 1, 1], w["encoder.conv_out.bias"][j] = 1, -_LIFT
        w["quant_conv.weight"][j, j, 0, 0] = _SCALE
        w["post_quant_conv.weight"][j, j, 0, 0] = 1 / _SCALE
        w["decoder.conv_in.weight"][d, j, 1, 1] = 1
        for level in (3, 2, 1):
            w[f"decoder.up.{level}.upsample.conv.weight"][d, d] = torch.outer(tent, tent)
        w["decoder.up.1.block.0.nin_shortcut.weight"][d, d, 0, 0] = 1
        nin = "decoder.up.0.block.0.nin_shortcut"
        w[nin + ".weight"][d, d, 0, 0], w[nin + ".bias"][d] = 1, _K
        w[nin + ".weight"][d + 1, d, 0, 0], w[nin + ".bias"][d + 1] = -1, _K
        w["decoder.conv_out.weight"][j, d, 1, 1], w["decoder.conv_out.bias"][j] = 1, -_LIFT
    w["quant_conv.bias"][4:] = -10  # tiny posterior variance, as real SD VAEs
    # Encoder output group: 16 channels [K±r, K±g, K±b, 0 x 10]; decoder groups: [K+c, K−c, 0, 0].
    encoder_mean = 6 * _K / 16
    encoder_std = math.sqrt((6 * (_K - encoder_mean) ** 2 + 10 * encoder_mean ** 2) / 16)
    for e, d in zip(encoder_channels, decoder_channels):
        w["encoder.norm_out.weight"][e], w["encoder.norm_out.bias"][e] = encoder_std, encoder_mean - _K + _LIFT
        w["decoder.norm_out.weight"][d], w["decoder.norm_out.bias"][d] = _K / 2, _K / 2 - _K + _LIFT
    return w


def smoothing_vae():
    """The host's VAE wrapper around ``smoothing_autoencoder_weights``."""
    import comfy.sd

    return comfy.sd.VAE(sd=smoothing_autoencoder_weights(),
                        config={"params": {"ddconfig": SMOOTH_VAE_DDCONFIG, "embed_dim": 4}})


def tiny_conditioning(seed: int, tokens: int = 77):
    """A CONDITIONING list for the tiny model: one random text embedding."""
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, TINY_CONTEXT_DIM, generator=generator), {}]]


def write_random_lora(path: Path, unet_layout: dict[str, tuple[int, ...]], rank: int = 4, seed: int = 3,
                      scale: float = 0.5) -> Path:
    """A LoRA (kohya-style ``lora_unet_*`` keys) for the attention projections of a UNet.

    Args:
        unet_layout: the UNet's weight names (as in ``diffusion_model.<name>``) and shapes.
    """
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, shape in unet_layout.items():
        if not key.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")) or len(shape) != 2:
            continue
        name = "lora_unet_" + key[:-len(".weight")].replace(".", "_")
        out_features, in_features = shape
        tensors[name + ".lora_down.weight"] = torch.randn(rank, in_features, generator=generator) / math.sqrt(in_features)
        tensors[name + ".lora_up.weight"] = torch.randn(out_features, rank, generator=generator) * scale / math.sqrt(rank)
        tensors[name + ".alpha"] = torch.tensor(float(rank))
    _atomic_write(path, lambda p: save_file(tensors, str(p)))
    return path
