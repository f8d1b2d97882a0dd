"""Names of the flow methods that need no weight file."""
from __future__ import annotations

from .dis import DisFlow

# The default first: DIS medium, the preset the EbSynth authors' own tooling uses.
DIS_METHODS = ("dis_medium", "dis_fine", "dis_fast", "dis_ultrafast")


def is_dis_method(method: str) -> bool:
    return method in DIS_METHODS


def make_dis(method: str) -> DisFlow:
    """The DIS estimator for ``dis_<preset>``."""
    if not is_dis_method(method):
        raise ValueError(f"Unknown DIS method '{method}': choose one of {', '.join(DIS_METHODS)}.")
    return DisFlow(method.removeprefix("dis_"))
