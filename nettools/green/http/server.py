"""Green ``http.server``: the standard module on the green ``socketserver`` and sockets.

``HTTPServer``, ``ThreadingHTTPServer`` (a greenthread per connection) and
the request handlers, all the standard code.
"""

from __future__ import annotations

from .. import select as _gselect
from .. import socket as _gsocket
from .. import socketserver as _gsocketserver
from .._importer import adopt, green_copy
from . import client as _gclient

_copy = green_copy(
    "http.server",
    {
        "socket": _gsocket,
        "select": _gselect,
        "socketserver": _gsocketserver,
        "http.client": _gclient,
    },
)

__all__ = adopt(globals(), _copy)
