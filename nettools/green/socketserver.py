"""Green ``socketserver``: the standard module on green sockets, selectors and threads.

A fresh copy of ``socketserver`` whose ``socket``, ``selectors``, ``threading``
and ``os`` are the green ones: ``serve_forever`` waits on the hub,
``ThreadingMixIn`` serves each request in a greenthread, and everything else
is the standard code.
"""

from __future__ import annotations

from . import os as _gos
from . import selectors as _gselectors
from . import socket as _gsocket
from . import threading as _gthreading
from ._importer import adopt, green_copy

_copy = green_copy(
    "socketserver",
    {"socket": _gsocket, "selectors": _gselectors, "threading": _gthreading, "os": _gos},
)

__all__ = adopt(globals(), _copy)
