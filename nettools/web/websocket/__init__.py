"""Websockets (RFC 6455) for WSGI apps, on green sockets.

Framing, the opening handshake, extension negotiation (permessage-deflate),
size limits and close codes all come from the Sans-I/O layer of the
``websockets`` library (``websockets.server.ServerProtocol``); this module only
moves bytes between it and a green socket -- a whole message in one plain
frame, the common case, passing beside the library's parser (``framing``) --
and gives the handler an eventlet-style blocking API::

    from nettools.web import websocket

    @websocket.WebSocketWSGI
    def echo(ws):
        for message in ws:          # str for text, bytes for binary
            ws.send(message)

    @websocket.WebSocketWSGI(max_message_size=64 << 10, origins=["https://example.com"])
    def chat(ws):
        ...

The decorated object is a WSGI app.  It needs a server that lets it take the
connection over (``environ['nettools.takeover']``), as ``nettools.web.wsgi``
does; the server then writes no HTTP response of its own and closes the socket
when the app returns.

One greenthread -- normally the handler, through ``wait()`` -- reads from the
socket; any number may ``send`` (sends are serialized by a lock).  A keepalive
greenthread pings the peer every ``ping_interval`` seconds and fails the
connection with 1011 if no pong arrives within ``ping_timeout``.  A peer that
goes away without a close frame just makes ``wait()`` return ``None``.

For a graceful stop of the server a connection counts as idle only while
``wait()`` waits with no part of a message received: a stop then closes it at
once with code 1001 (going away) -- ``wait()`` returns ``None`` when the peer
answers, or when it has not within ``close_timeout`` -- while one in the middle
of a message, or whose handler is still working on one, is left to finish it
and is closed the same way when it next waits.

``RFC6455WebSocket(sock, environ, client=...)`` (eventlet's name) runs a
websocket over a socket whose handshake the program did itself.  An old client
that sends no ``Sec-WebSocket-Version`` is served one of the 2010 drafts,
hixie-75 or hixie-76, as eventlet does: its handler gets a ``HixieWebSocket``
(eventlet's ``WebSocket``), whose messages are text only.

Inside: ``handshake`` (``WebSocketWSGI``), ``connection`` (``WebSocket``), ``serving``
(a handler run on one, and the close after it),
``standalone`` (``RFC6455WebSocket``), ``inbox`` (frames into messages),
``framing`` (whole single-frame messages past the library's parser, both ways),
``hixie`` (the drafts).
"""

from __future__ import annotations

from .connection import WebSocket, WebSocketClosed
from .handshake import WebSocketWSGI
from .hixie import HixieWebSocket
from .standalone import RFC6455WebSocket

__all__ = ["WebSocketWSGI", "WebSocket", "RFC6455WebSocket", "WebSocketClosed", "HixieWebSocket"]
