"""Import the pack's plain packages (flow/, propagation/, video/) without a ComfyUI host, and the
test harness's helpers (media, models) that benchmarks share with the tests.

The pack's top-level ``__init__`` registers nodes and needs ComfyUI, so it is not executed: the
package is registered by path and its plain sub-packages imported from it.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "rerender_pack"
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))


def plain(module: str):
    """``plain("flow.dis")`` → the pack's flow/dis.py module."""
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        sys.modules[NAME] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{NAME}.{module}")


def propagation_modules() -> dict:
    """The plain modules harness.propagation_quality.measure_settings propagates and scores with."""
    return {"video": plain("propagation.video"), "video_flow": plain("flow.video_flow"), "dis": plain("flow.dis"),
            "compose": plain("flow.compose"), "consistency": plain("flow.consistency"),
            "warp": plain("flow.warp")}


def script(name: str):
    """One of the repository's scripts/ helpers (through the loader the tests and scripts share)."""
    if str(ROOT / "scripts") not in sys.path:
        sys.path.append(str(ROOT / "scripts"))
    from script_loader import load_script

    return load_script(name)
