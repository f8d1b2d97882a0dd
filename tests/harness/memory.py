"""Peak resident memory of a call, read from Linux's /proc (the high-water mark VmHWM, reset first)."""
from __future__ import annotations

import gc
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(key: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} is not in {STATUS}")


def available() -> bool:
    """Whether this system lets a process reset and read its peak resident memory."""
    try:
        CLEAR_REFS.write_text("5")
        return _status_bytes("VmHWM") > 0
    except OSError:
        return False


def peak_growth(call):
    """Run ``call()``; return (its result, how far resident memory rose above where it started, bytes)."""
    gc.collect()
    CLEAR_REFS.write_text("5")   # "5" resets the peak to the current resident size
    before = _status_bytes("VmRSS")
    result = call()
    return result, _status_bytes("VmHWM") - before
