"""``eventlet.greenio`` (and ``greenio.base``, ``greenio.py3``), re-exported."""

from __future__ import annotations

from ...green.errors import SOCKET_BLOCKING, SOCKET_CLOSED
from ...green.pipes import GreenPipe
from ...green.socket import GreenSocket, set_nonblocking
from ...net import shutdown_quietly as shutdown_safe

__all__ = [
    "GreenPipe",
    "GreenSocket",
    "SOCKET_BLOCKING",
    "SOCKET_CLOSED",
    "set_nonblocking",
    "shutdown_safe",
]
