"""The foundation: the pack loads in the real host, and the fixtures every later test stands on work."""
from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
import torch

from harness.host import PACK_FOLDER_NAME, REPO
from harness.models import TINY_CONTEXT_DIM, tiny_conditioning, tiny_sd15, tiny_vae

# Modules only the host provides; the plain packages must never import them.
HOST_MODULES = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "nodes",
                "execution", "server", "latent_preview", "node_helpers", "comfyui_version"}


def test_host_loader_registers_every_node(host, pack):
    registry = host.nodes.NODE_CLASS_MAPPINGS
    assert pack.NODE_CLASS_MAPPINGS, "the pack exports no nodes"
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert registry.get(node_id) is cls, f"{node_id} was not registered by the host's loader"
        assert node_id in host.nodes.NODE_DISPLAY_NAME_MAPPINGS
    # The host imported the pack from the hyphenated folder, as from a user's clone.
    assert Path(pack.__file__).parent.name == PACK_FOLDER_NAME


def test_every_node_follows_the_pack_conventions(pack):
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert node_id.startswith("Rerender"), node_id
        assert cls.CATEGORY.split("/")[0] == "Rerender", node_id
        assert cls.DESCRIPTION, f"{node_id} has no description"
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), f"{node_id}: one tooltip per output"
        inputs = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, spec in inputs.get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


# The key-frame constraints keep their math and hooks host-free; only the renderer drives the host.
PLAIN = ["flow", "propagation", "video", "keyframes/constraints.py", "keyframes/settings.py",
         "keyframes/attention.py", "keyframes/sampler.py", "keyframes/conditioning.py"]


@pytest.mark.parametrize("package", PLAIN)
def test_plain_packages_never_import_the_host(package):
    path = REPO / package
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert files and all(f.exists() for f in files), f"{package} has no modules"
    for path in files:
        leaked = _imported_modules(path) & HOST_MODULES
        assert not leaked, f"{path.relative_to(REPO)} imports host modules {sorted(leaked)}"


def test_tiny_unet_samples_four_steps_through_comfy_sample(host):
    import comfy.sample

    model = tiny_sd15(seed=0)
    latent = torch.zeros(2, 4, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 123)
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        with torch.inference_mode():
            out = comfy.sample.sample(model, noise, 4, 5.0, "euler", "normal", tiny_conditioning(1),
                                      tiny_conditioning(2), latent, seed=123, disable_pbar=True)
        runs.append(out)
        print(f"tiny UNet, 4 euler steps, batch 2 at 64x64: {time.perf_counter() - started:.2f}s")
    assert out.shape == latent.shape
    assert torch.isfinite(out).all()
    assert torch.equal(runs[0], runs[1]), "sampling the same seed twice must give the same latent"
    assert not torch.allclose(out, noise * 14.6146, atol=1e-3), "the model did not change the noise"


def test_tiny_model_is_sd15_shaped(host):
    import comfy.supported_models

    model = tiny_sd15(seed=0)
    assert isinstance(model.model.model_config, comfy.supported_models.SD15)
    unet = model.model.diffusion_model
    assert len(unet.input_blocks) == 12 and len(unet.output_blocks) == 12
    vae = tiny_vae()
    with torch.inference_mode():
        latent = vae.encode(torch.rand(1, 64, 64, 3))
        image = vae.decode(latent)
    assert latent.shape == (1, 4, 8, 8)
    assert image.shape[-3:] == (64, 64, 3)
    assert tiny_conditioning(0)[0][0].shape == (1, 77, TINY_CONTEXT_DIM)


@pytest.mark.slow
def test_full_size_models_load_through_the_host_loaders(host, model_cache):
    checkpoint, controlnet = model_cache.checkpoint(), model_cache.controlnet_file()
    modified = (checkpoint.stat().st_mtime_ns, controlnet.stat().st_mtime_ns)
    model, clip, vae = host.call("CheckpointLoaderSimple", ckpt_name=checkpoint.name)
    assert model.model.diffusion_model.model_channels == 320
    assert type(model.model.model_config).__name__ == "SD15"
    (conditioning,) = host.call("CLIPTextEncode", clip=clip, text="a wolf, oil painting")
    assert conditioning[0][0].shape == (1, 77, 768)
    with torch.inference_mode():
        image = vae.decode(vae.encode(torch.rand(1, 64, 64, 3)))
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()
    (control,) = host.call("ControlNetLoader", control_net_name=controlnet.name)
    assert type(control).__name__ == "ControlNet"
    # A second request reuses the cached files instead of writing them again.
    model_cache.ensure_all()
    assert (checkpoint.stat().st_mtime_ns, controlnet.stat().st_mtime_ns) == modified


@pytest.mark.server
def test_server_lists_the_pack_nodes(server, pack):
    info = server.object_info()
    for node_id in pack.NODE_CLASS_MAPPINGS:
        assert node_id in info, f"{node_id} missing from the server's /object_info"
        assert info[node_id]["category"] == pack.NODE_CLASS_MAPPINGS[node_id].CATEGORY
