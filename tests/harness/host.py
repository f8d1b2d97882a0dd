"""The ComfyUI host inside the test process, with the pack loaded by the host's own loader.

The pack is linked into a temporary ``custom_nodes`` folder under a hyphenated name, exactly
as a user's clone would sit, and the host imports it from there: tests never import the pack
module by themselves.
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "scripts") not in sys.path:
    sys.path.append(str(REPO / "scripts"))

from script_loader import load_script  # noqa: E402  (scripts/ is not a package)

BOOTSTRAP = load_script("bootstrap_env")
HEADLESS = load_script("comfy_headless")
PACK_FOLDER_NAME, PromptFailed, link_pack = HEADLESS.PACK_FOLDER_NAME, HEADLESS.PromptFailed, HEADLESS.link_pack


def host_root() -> Path:
    """The ComfyUI checkout under test: ``COMFYUI_PATH``, else the host `make test` set up for
    ``RERENDER_HOST`` (the 2024 one by default, the current one with ``make test HOST=current``)."""
    configured = os.environ.get("COMFYUI_PATH")
    bundled = BOOTSTRAP.CURRENT_HOST if os.environ.get("RERENDER_HOST") == "current" else BOOTSTRAP.DEFAULT_HOST
    root = Path(configured).expanduser() if configured else bundled
    if not (root / "main.py").exists():
        raise RuntimeError(
            f"No ComfyUI host at {root}: run the tests with `make test` (it installs the host) "
            "or set COMFYUI_PATH to a ComfyUI checkout.")
    return root.resolve()


def is_current_host(root: Path) -> bool:
    """True for hosts of v0.3.48 and later (V3 node API, async executor)."""
    return (root / "comfy_api").is_dir()


class _Events:
    """Stands in for the web server the executor reports to; keeps what it is sent."""

    client_id = None
    last_node_id = None
    last_prompt_id = None

    def __init__(self):
        self.events = []

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data))

    def queue_updated(self):
        pass


class InProcessHost:
    """ComfyUI imported into this process on the CPU, with the pack registered by its loader."""

    def __init__(self, root: Path, workdir: Path):
        self.root = root
        self.workdir = workdir
        self.current = is_current_host(root)
        self.nodes = None
        self.pack = None

    def start(self) -> "InProcessHost":
        sys.path.insert(0, str(self.root))
        from comfy.cli_args import args

        # must be set before comfy.model_management is imported; bench/gpu_check.py asks for the GPU
        args.cpu = os.environ.get("RERENDER_TEST_DEVICE", "cpu") == "cpu"
        import folder_paths

        for kind in ("output", "temp", "input"):
            (self.workdir / kind).mkdir(parents=True, exist_ok=True)
        folder_paths.set_output_directory(str(self.workdir / "output"))
        folder_paths.set_temp_directory(str(self.workdir / "temp"))
        folder_paths.set_input_directory(str(self.workdir / "input"))
        link = link_pack(self.workdir / "custom_nodes")
        # Only our folder: a user's COMFYUI_PATH checkout may hold other packs.
        folder_paths.folder_names_and_paths["custom_nodes"] = ([str(link.parent)], set())

        import nodes

        if inspect.iscoroutinefunction(getattr(nodes, "init_extra_nodes", None)):
            asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        else:
            nodes.init_custom_nodes()
        self.nodes = nodes
        init_file = str(link / "__init__.py")
        matches = [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == init_file]
        if not matches:
            raise RuntimeError(f"The host did not import the pack from {link}; see the log above for the import error.")
        self.pack = matches[0]
        self._import_submodules()
        return self

    def _import_submodules(self) -> None:
        """Import every module of the pack's packages under the name the host gave the pack, so tests
        can reach e.g. ``pack.flow.io`` even where the nodes do not import it."""
        root = Path(self.pack.__file__).parent
        for init in sorted(root.glob("*/__init__.py")):
            package = init.parent.name
            if package in ("tests", "scripts", "bench", "docs", "example_workflows"):
                continue
            for module in sorted(init.parent.glob("*.py")):
                name = package if module.stem == "__init__" else f"{package}.{module.stem}"
                importlib.import_module(f"{self.pack.__name__}.{name}")

    def folder_paths(self):
        import folder_paths

        return folder_paths

    def call(self, node_class: str, **inputs):
        """Call a registered node's function as the executor does (under inference mode).

        Returns the node's output tuple (the ``result`` part when the node also returns UI data).
        """
        import torch

        cls = self.nodes.NODE_CLASS_MAPPINGS[node_class]
        with torch.inference_mode():
            result = getattr(cls(), cls.FUNCTION)(**inputs)
        return result["result"] if isinstance(result, dict) else result

    def execute(self, prompt: dict, workflow: dict | None = None) -> dict:
        """Validate and run an API-format prompt; return the UI outputs per node id.

        ``workflow`` (a UI graph) is passed as the web UI passes it, in ``extra_pnginfo``, so nodes
        that embed metadata receive it through their hidden inputs.
        """
        import execution

        prompt_id = str(uuid.uuid4())
        if inspect.iscoroutinefunction(execution.validate_prompt):
            valid = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
        else:
            valid = execution.validate_prompt(prompt)
        ok, error, outputs, node_errors = valid
        if not ok:
            raise PromptFailed(f"prompt rejected: {error}", node_errors)
        server = _Events()
        if "cache_type" in inspect.signature(execution.PromptExecutor.__init__).parameters:
            executor = execution.PromptExecutor(server, cache_type=False)
        else:
            executor = execution.PromptExecutor(server)
        extra_data = {"extra_pnginfo": {"workflow": workflow}} if workflow is not None else {}
        executor.execute(prompt, prompt_id, extra_data, outputs)
        if not executor.success:
            errors = [data for event, data in executor.status_messages if event == "execution_error"]
            message = errors[0].get("exception_message", "") if errors else "execution failed"
            raise PromptFailed(message, errors)
        return executor.history_result["outputs"] if hasattr(executor, "history_result") else executor.outputs_ui
