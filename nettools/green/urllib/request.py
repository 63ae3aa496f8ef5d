"""Green ``urllib.request``: a fresh copy of the standard module on green sockets,
TLS and ``http.client``; ``urlopen`` parks only the calling greenthread.

Its exceptions are ``urllib.error``'s and ``http.client``'s, the standard ones.
"""

from __future__ import annotations

from .. import socket as _gsocket
from .. import ssl as _gssl
from .. import time as _gtime
from .._importer import adopt, green_copy
from ..http import client as _gclient

_copy = green_copy(
    "urllib.request",
    {"socket": _gsocket, "ssl": _gssl, "http.client": _gclient, "time": _gtime},
)

__all__ = adopt(globals(), _copy)
