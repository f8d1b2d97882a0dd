"""Progress bars that also stop cleanly when the user presses Cancel."""
from __future__ import annotations

from typing import Callable

import comfy.model_management
import comfy.utils


def check_interrupted() -> None:
    """Raise the host's interrupt exception if the user cancelled the run."""
    comfy.model_management.throw_exception_if_processing_interrupted()


def progress_reporter(total: int) -> Callable[..., None]:
    """A callback ``report(done, total=None, preview=None)`` that moves a node progress bar.

    It checks for interruption on every call, so long loops that report progress stop at the
    next step when the user cancels. ``preview`` is what the host's latent previewer returns
    (shown on the node), or None.
    """
    bar = comfy.utils.ProgressBar(total)  # positional total: the 2024 host has no node_id argument

    def report(done: int, total_now: int | None = None, preview=None) -> None:
        check_interrupted()
        bar.update_absolute(done, total_now or total, preview)

    return report
