"""Green ``urllib.robotparser``: ``RobotFileParser.read`` fetches with the green
``urllib.request``."""

from __future__ import annotations

from .._importer import adopt, green_copy
from . import request as _grequest

_copy = green_copy("urllib.robotparser", {"urllib.request": _grequest})

__all__ = adopt(globals(), _copy)
