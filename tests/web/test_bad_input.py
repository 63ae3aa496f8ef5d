"""Bad input from a client is the client's mistake: the protocol's error code, no traceback.

Every ordinary client mistake against the WSGI server and its websockets -- a malformed
request or body, a bad upgrade, a protocol violation on a websocket, a connection reset at
any stage -- gets its status (400, 408, 413, ...) or close code (1002, 1007, 1009) or just
the end of the connection, and nothing in the log carries a traceback or reads as an error
of the server's; the server serves the next client as before.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import struct

import pytest
from helpers.green import settle
from helpers.wsgi import ServerThread, connect, read_response, recv_until_closed

from nettools.web import websocket

pytestmark = pytest.mark.timeout(60)


def _app(environ, start_response):
    """Plain HTTP: echoes the body, streams /stream; websockets on /ws."""
    path = environ["PATH_INFO"]
    if path == "/ws":
        return _ws_echo(environ, start_response)
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"x" * 65536 for _ in range(256))  # 16 MiB: the client leaves long before
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got " + body]


@websocket.WebSocketWSGI(max_message_size=1024, ping_interval=None)
def _ws_echo(ws):
    while (message := ws.wait()) is not None:
        ws.send(message)


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _upgrade(port: int, extra: bytes = b"") -> socket.socket:
    sock = connect(port)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra
                 + b"\r\n")  # fmt: skip
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def _frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True,
           rsv: int = 0) -> bytes:  # fmt: skip
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    length = bytes([n]) if n < 126 else b"\x7e" + struct.pack("!H", n)
    if not mask:
        return bytes([first, length[0]]) + length[1:] + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([first, 0x80 | length[0]]) + length[1:] + key + masked


def _close_code(sock: socket.socket) -> int | None:
    """The code of the server's close frame (None: the connection ended without one)."""
    data = recv_until_closed(sock)
    while len(data) >= 2:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        head = 2 if n < 126 else 4
        if n == 126:
            n = struct.unpack("!H", data[2:4])[0]
        if opcode == 0x8:
            return struct.unpack("!H", data[head : head + 2])[0]
        data = data[head + n :]
    return None


# Each: what the client does, and what it must get back (a status line's start, a close
# code, or None for no answer at all).
HTTP_MISTAKES = {
    "malformed request line": (b"GET /\x00 HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 "),
    "bad header": (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", b"HTTP/1.1 400 "),
    "smuggling": (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\n\r\n", b"HTTP/1.1 400 "),  # fmt: skip
    "bad chunk": (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"HTTP/1.1 400 "),
    "body too big": (b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", b"HTTP/1.1 413 "),
    "TLS to a plain port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"HTTP/1.1 400 "),
    "binary garbage": (bytes(range(256)), b"HTTP/1.1 400 "),
    "upgrade without a key": (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                              b"HTTP/1.1 400 "),  # fmt: skip
    "upgrade, wrong version": (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                               b"Connection: Upgrade\r\nSec-WebSocket-Version: 7\r\n"
                               b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n",
                               b"HTTP/1.1 400 "),  # fmt: skip
}

WS_MISTAKES = {
    "unmasked frame": (_frame(0x1, b"hi", mask=False), 1002),
    "reserved bits": (_frame(0x1, b"hi", rsv=0b100), 1002),
    "reserved opcode": (_frame(0x3, b"hi"), 1002),
    "text not UTF-8": (_frame(0x1, b"\xff\xfe"), 1007),
    "message too big": (_frame(0x2, b"x" * 2000), 1009),
    "fragmented ping": (_frame(0x9, b"", fin=False), 1002),
    "continuation first": (_frame(0x0, b"hi"), 1002),
    "bad close code": (_frame(0x8, struct.pack("!H", 999)), 1002),
}


@pytest.fixture
def server(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    with ServerThread(_app, log_output=True) as srv:
        yield srv
        # Nothing lost: the next client is served as before.
        sock = connect(srv.port)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        assert read_response(sock.makefile("rb")).body == b"got ok"
        sock.close()
    records = caplog.get_records("call") + caplog.get_records("teardown")
    noisy = [r for r in records if r.exc_info or r.levelno >= logging.WARNING]
    assert not noisy, [(r.name, r.getMessage()) for r in noisy]


@pytest.mark.parametrize("mistake", HTTP_MISTAKES)
def test_an_http_mistake_gets_its_status_and_logs_no_traceback(server, mistake):
    sent, expected = HTTP_MISTAKES[mistake]
    sock = connect(server.port)
    sock.sendall(sent)
    data = recv_until_closed(sock)
    sock.close()
    assert data.startswith(expected), data[:200]


@pytest.mark.parametrize("mistake", WS_MISTAKES)
def test_a_websocket_mistake_gets_its_close_code_and_logs_no_traceback(server, mistake):
    sent, expected = WS_MISTAKES[mistake]
    sock = _upgrade(server.port)
    sock.sendall(sent)
    assert _close_code(sock) == expected
    sock.close()


# Each: how far a client gets before it resets the connection.
RESET_AT = {
    "mid request head": b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ",
    "mid body": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"y" * 50000,
    "mid response": b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    "mid handshake": b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
    "mid frame": _frame(0x1, b"hello there")[:5],
    "idle websocket": b"",
    "websocket answers unread": _frame(0x1, b"x" * 1000) * 2000,
}


@pytest.mark.parametrize("stage", RESET_AT)
def test_a_reset_at_any_stage_logs_no_traceback(server, stage):
    on_websocket = stage in ("mid frame", "idle websocket", "websocket answers unread")
    sock = _upgrade(server.port) if on_websocket else connect(server.port)
    sock.setblocking(False)
    try:
        sock.sendall(RESET_AT[stage])
    except BlockingIOError:
        pass  # the server stopped reading: its answers fill the buffers
    server.call(settle)  # the server took in what it could
    assert server.connections() == 1
    _reset(sock)
    server.call(settle)
    assert server.connections() == 0
