"""Green ``http.client``: a fresh copy of the standard module on green sockets and TLS.

Its exception classes are the standard module's (``except http.client.HTTPException``
catches what it raises).
"""

from __future__ import annotations

from .. import socket as _gsocket
from .. import ssl as _gssl
from .._importer import adopt, green_copy

_copy = green_copy("http.client", {"socket": _gsocket, "ssl": _gssl})

__all__ = adopt(globals(), _copy)
