"""Green ``http.cookiejar``: the standard module with a green lock, on the green
``urllib.request`` and ``http.client``."""

from __future__ import annotations

from .. import threading as _gthreading
from .._importer import adopt, green_copy
from ..urllib import request as _grequest
from . import client as _gclient

_copy = green_copy(
    "http.cookiejar",
    {"threading": _gthreading, "urllib.request": _grequest, "http.client": _gclient},
)

__all__ = adopt(globals(), _copy)
