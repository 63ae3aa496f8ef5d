"""``eventlet.websocket``: its ``WebSocket`` is the draft (hixie-76) connection
class and its ``WebSocketWSGI`` serves the 2010 drafts to old clients, as in
eventlet; nettools' own ``WebSocketWSGI`` speaks RFC 6455 only unless asked."""

from __future__ import annotations

from typing import Any

from ..web.websocket import HixieWebSocket as WebSocket
from ..web.websocket import RFC6455WebSocket, WebSocketClosed
from ..web.websocket import WebSocketWSGI as _WebSocketWSGI

__all__ = ["RFC6455WebSocket", "WebSocket", "WebSocketClosed", "WebSocketWSGI"]


class WebSocketWSGI(_WebSocketWSGI):
    """nettools' ``WebSocketWSGI`` with ``drafts=True`` by default, as eventlet's."""

    def __init__(self, handler: Any = None, **options: Any) -> None:
        options.setdefault("drafts", True)
        super().__init__(handler, **options)
