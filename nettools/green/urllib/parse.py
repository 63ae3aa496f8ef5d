"""``urllib.parse``: no I/O of its own, so the green one is the standard one."""

from __future__ import annotations

from urllib.parse import *  # noqa: F403
from urllib.parse import __all__  # noqa: F401
