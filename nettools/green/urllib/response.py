"""``urllib.response``: no I/O of its own, so the green one is the standard one."""

from __future__ import annotations

from urllib.response import *  # noqa: F403
from urllib.response import __all__  # noqa: F401
