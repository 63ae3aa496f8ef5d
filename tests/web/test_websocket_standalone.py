"""RFC6455WebSocket: a websocket over a socket whose handshake the program did."""

from __future__ import annotations

import base64
import os

import pytest

import nettools
from nettools.green import socket as green_socket
from nettools.kernel.greenthread import spawn
from nettools.web import websocket, wsgi


@websocket.WebSocketWSGI
def echo(ws):
    for message in ws:
        ws.send(message)


def _handshake(sock) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")


def test_client_side_websocket_on_a_handshaken_socket():
    srv = wsgi.WSGIServer(("127.0.0.1", 0), echo, log_output=False).start()
    try:
        sock = nettools.connect(("127.0.0.1", srv.address[1]))
        _handshake(sock)
        ws = websocket.RFC6455WebSocket(sock, {}, client=True)
        ws.send(b"hello")
        assert ws.wait() == b"hello"
        ws.send("text too")
        assert ws.wait() == "text too"
        ws.close()
        assert ws.wait() is None
        assert ws.close_code == 1000
        sock.close()
    finally:
        srv.stop(0)


def test_server_side_websocket_on_a_socket_pair():
    a, b = green_socket.socketpair()
    server = websocket.RFC6455WebSocket(a, {"HTTP_ORIGIN": "http://o"}, protocol="chat")
    client = websocket.RFC6455WebSocket(b, {}, client=True)
    assert server.origin == "http://o" and server.protocol == "chat"
    got = spawn(server.wait)
    client.send("ping")
    assert got.wait() == "ping"
    # A client must mask, a server must not: a server frame read as a client's is refused.
    confused = websocket.RFC6455WebSocket(b, {}, client=False)
    server.send("unmasked")
    assert confused.wait() is None
    a.close()
    b.close()


def test_only_version_13():
    a, b = green_socket.socketpair()
    with pytest.raises(ValueError, match="13"):
        websocket.RFC6455WebSocket(a, {}, version=8)
    a.close()
    b.close()


def test_extensions_assigned_after_construction_apply_to_the_next_frames():
    # Built before the peer's answer was read, the client learns afterwards that
    # permessage-deflate is on: its sends stay plain (allowed), and the server's
    # compressed frames are inflated from then on.
    a, b = green_socket.socketpair()
    deflate = {"permessage-deflate": {"client_no_context_takeover": False,
                                      "server_no_context_takeover": False}}
    server = websocket.RFC6455WebSocket(a, {}, extensions=deflate)
    client = websocket.RFC6455WebSocket(b, {}, client=True)
    assert client.extensions == {}
    client.send(b"plain")
    assert server.wait() == b"plain"
    server.send(b"squeezed " * 20)
    client.extensions = deflate
    assert client.extensions == deflate
    assert client.wait() == b"squeezed " * 20
    client.extensions = None  # off again: a compressed frame is now a protocol error
    server.send(b"more")
    assert client.wait() is None
    a.close()
    b.close()
