"""``urllib.error``: no I/O of its own, so the green one is the standard one."""

from __future__ import annotations

from urllib.error import *  # noqa: F403
from urllib.error import __all__  # noqa: F401
