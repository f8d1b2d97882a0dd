"""Running ComfyUI headless with this pack: the real server (``main.py``) as a subprocess, a small
HTTP client for it, and conversion of UI-format workflows (what users drag in) to the API-format
prompts the server executes. Used by the tests and by the demo. Standard library only.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK_FOLDER_NAME = "ComfyUI-Rerender"
# Nodes that exist only in the frontend; they never reach the server.
FRONTEND_ONLY_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


class PromptFailed(RuntimeError):
    """The host rejected a prompt or a node raised while executing it."""

    def __init__(self, message: str, details=None):
        super().__init__(message)
        self.details = details


def link_pack(custom_nodes: Path) -> Path:
    """Link the repository into ``custom_nodes`` as a user's clone would be placed."""
    custom_nodes.mkdir(parents=True, exist_ok=True)
    link = custom_nodes / PACK_FOLDER_NAME
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    return link


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _host_flags(root: Path) -> set[str]:
    """The command-line flags this host's main.py accepts (they differ between host versions)."""
    return set(re.findall(r'add_argument\("(--[a-z-]+)"', (root / "comfy" / "cli_args.py").read_text()))


class ComfyServer:
    """``main.py --cpu`` on a free loopback port, with the pack linked into its custom nodes."""

    def __init__(self, root: Path, workdir: Path, model_folders: dict[str, Path], python: str = sys.executable,
                 output_dir: Path | None = None):
        self.root = root
        self.workdir = workdir
        self.model_folders = model_folders
        self.python = python
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.log_path = workdir / "server.log"
        self.output_dir = output_dir or workdir / "output"
        self.input_dir = workdir / "input"

    def _extra_model_paths(self) -> Path:
        custom_nodes = link_pack(self.workdir / "custom_nodes")
        lines = ["rerender_tests:", f"    custom_nodes: {custom_nodes.parent}"]
        lines += [f"    {kind}: {folder}" for kind, folder in self.model_folders.items()]
        path = self.workdir / "extra_model_paths.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def command(self) -> list[str]:
        for folder in (self.output_dir, self.workdir / "temp", self.input_dir, self.workdir / "user"):
            folder.mkdir(parents=True, exist_ok=True)
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--dont-print-server",
               "--output-directory", str(self.output_dir),
               "--temp-directory", str(self.workdir / "temp"),
               "--input-directory", str(self.input_dir),
               "--extra-model-paths-config", str(self._extra_model_paths())]
        flags = _host_flags(self.root)
        if "--user-directory" in flags:
            cmd += ["--user-directory", str(self.workdir / "user")]
            # The current frontend greets a new user with tutorials and the template browser.
            settings = self.workdir / "user" / "default" / "comfy.settings.json"
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
        if "--disable-api-nodes" in flags:
            cmd += ["--disable-api-nodes"]
        if "--database-url" in flags:
            cmd += ["--database-url", "sqlite:///:memory:"]
        return cmd

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(self.command(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict, timeout: float = 30):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def view(self, output: dict) -> bytes:
        """The bytes of an output file, by the ``{filename, subfolder, type}`` entry the history reports."""
        query = urllib.parse.urlencode({k: output.get(k, "") for k in ("filename", "subfolder", "type")})
        with urllib.request.urlopen(f"{self.url}/view?{query}", timeout=60) as response:
            return response.read()

    def object_info(self, node_class: str | None = None) -> dict:
        return self.get("/object_info" + (f"/{node_class}" if node_class else ""))

    def queue(self, prompt: dict, workflow: dict | None = None) -> str:
        body = {"prompt": prompt, "client_id": "rerender-tests"}
        if workflow is not None:
            body["extra_data"] = {"extra_pnginfo": {"workflow": workflow}}
        try:
            return self.post("/prompt", body)["prompt_id"]
        except urllib.error.HTTPError as error:
            details = json.loads(error.read() or b"{}")
            raise PromptFailed(f"prompt rejected: {details.get('error')}", details.get("node_errors")) from None

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history:  # the host records a prompt in its history once it has finished
                return history[prompt_id]
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f}s:\n{self.log_tail()}")

    def run(self, prompt: dict, timeout: float = 600, workflow: dict | None = None) -> dict:
        """Queue a prompt, wait for it, return its outputs; raise PromptFailed with the node's error."""
        entry = self.wait(self.queue(prompt, workflow), timeout)
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            errors = [data for event, data in status.get("messages", []) if event == "execution_error"]
            message = errors[0].get("exception_message", "") if errors else f"status {status}"
            raise PromptFailed(message, errors)
        return entry["outputs"]


def is_widget(spec) -> bool:
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def has_control_widget(name: str, spec) -> bool:
    """The frontend adds a 'control after generate' value after seed-like widgets."""
    options = spec[1] if len(spec) > 1 else {}
    return bool(options.get("control_after_generate")) or (spec[0] == "INT" and name in ("seed", "noise_seed"))


def workflow_to_prompt(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow (version 0.4) into an API-format prompt.

    Widget values are matched to input names in the order the server lists the inputs
    (``object_info``), skipping the extra value the frontend stores after seed widgets; links
    become ``[source node id, output slot]``. Frontend-only nodes (notes) are dropped.
    """
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in FRONTEND_ONLY_NODES:
            continue
        if node.get("mode", 0) != 0:
            raise ValueError(f"node {node['id']} ({kind}) is muted or bypassed; un-mute it or remove it first")
        if kind not in object_info:
            raise ValueError(f"node {node['id']}: the server has no node type {kind}")
        spec = object_info[kind]["input"]
        linked = {i["name"]: i["link"] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values", []))
        position, inputs = 0, {}
        for section in ("required", "optional"):
            for name, input_spec in spec.get(section, {}).items():
                widget = is_widget(input_spec)
                if name in linked:
                    source = links[linked[name]]
                    inputs[name] = [str(source[1]), source[2]]
                elif widget and position < len(values):
                    inputs[name] = values[position]
                if widget:
                    position += 2 if has_control_widget(name, input_spec) else 1
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs, "_meta": {"title": node.get("title", kind)}}
    return prompt
