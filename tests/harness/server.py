"""The host's real server (``main.py``) as a subprocess, and a small HTTP client for it."""
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
import urllib.request
from pathlib import Path

from .host import PromptFailed, link_pack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _host_flags(root: Path) -> set[str]:
    """The command-line flags this host's main.py accepts (they differ between host versions)."""
    return set(re.findall(r'add_argument\("(--[a-z-]+)"', (root / "comfy" / "cli_args.py").read_text()))


class ComfyServer:
    """``main.py --cpu`` on a free loopback port, with the pack linked into its custom nodes."""

    def __init__(self, root: Path, workdir: Path, model_folders: dict[str, Path]):
        self.root = root
        self.workdir = workdir
        self.model_folders = model_folders
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None
        self.log_path = workdir / "server.log"
        self.output_dir = workdir / "output"
        self.input_dir = workdir / "input"

    def _extra_model_paths(self) -> Path:
        custom_nodes = link_pack(self.workdir / "custom_nodes")
        lines = ["rerender_tests:", f"    custom_nodes: {custom_nodes.parent}"]
        lines += [f"    {kind}: {folder}" for kind, folder in self.model_folders.items()]
        path = self.workdir / "extra_model_paths.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def command(self) -> list[str]:
        for kind in ("output", "temp", "input", "user"):
            (self.workdir / kind).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--dont-print-server",
               "--output-directory", str(self.output_dir),
               "--temp-directory", str(self.workdir / "temp"),
               "--input-directory", str(self.input_dir),
               "--extra-model-paths-config", str(self._extra_model_paths())]
        flags = _host_flags(self.root)
        if "--user-directory" in flags:
            cmd += ["--user-directory", str(self.workdir / "user")]
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
