"""Import one of the repository's ``scripts/<name>.py`` files as a module, by name.

The scripts are not a package: they run as ``python scripts/<name>.py`` (which puts scripts/ on
``sys.path``, so ``from script_loader import load_script`` works there), and the tests, benchmarks
and other scripts load them through this one function. Each script is loaded once per process as
``rerender_script_<name>``, so every caller shares its classes (e.g. ``PromptFailed``).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parent


def load_script(name: str) -> ModuleType:
    """``load_script("comfy_headless")`` → scripts/comfy_headless.py as a module."""
    module_name = f"rerender_script_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = SCRIPTS / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"There is no script {path}.")
    # Scripts loaded from elsewhere (tests, bench/) import this loader by name as well.
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
