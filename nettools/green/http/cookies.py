"""``http.cookies``: it only parses and formats, so the green one is the standard one."""

from __future__ import annotations

from http.cookies import *  # noqa: F403
from http.cookies import __all__  # noqa: F401
