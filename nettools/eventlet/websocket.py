"""``eventlet.websocket``, re-exported: its ``WebSocket`` is the draft (hixie-76)
connection class, as in eventlet; nettools' own ``WebSocket`` is RFC 6455's."""

from __future__ import annotations

from ..web.websocket import HixieWebSocket as WebSocket
from ..web.websocket import RFC6455WebSocket, WebSocketClosed, WebSocketWSGI

__all__ = ["RFC6455WebSocket", "WebSocket", "WebSocketClosed", "WebSocketWSGI"]
