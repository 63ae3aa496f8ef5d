"""Green ``time``: the standard module with a ``sleep`` that yields to other greenthreads."""

from __future__ import annotations

import time as _time
from time import *  # noqa: F403 - a drop-in replacement re-exports everything

from ..kernel.greenthread import sleep as _green_sleep
from ._waits import in_hub

__patched__ = ["sleep"]

_real_sleep = _time.sleep


def sleep(secs: float) -> None:
    """Suspend the calling greenthread for ``secs`` seconds; other greenthreads run meanwhile."""
    if secs < 0:
        raise ValueError("sleep length must be non-negative")
    if in_hub():
        # A hub callback cannot wait; behave like the real call there.
        _real_sleep(secs)
        return
    _green_sleep(secs)
