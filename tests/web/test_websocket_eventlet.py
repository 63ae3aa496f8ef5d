"""What eventlet's websocket applications rely on: the 2010 drafts (hixie-75
and hixie-76) for clients that send no ``Sec-WebSocket-Version``, eventlet's
refusals (400, ``Connection: close``, no body), and a ``WebSocketWSGI`` app
wrapped in a generator.

The server runs on this thread's hub; each client is a blocking stdlib socket
in an OS thread (``tpool.execute``), doing exactly what an old browser did.
"""

from __future__ import annotations

import http.client
import socket as stdsocket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nettools
from nettools import Event, tpool
from nettools.eventlet import websocket as eventlet_websocket
from nettools.web import websocket, wsgi

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"
T = 10

# The example of draft-76 (section 1.3): two keys, eight bytes, and the answer.
KEY1 = "4 @1  46546xW%0l 1 5"
KEY2 = "12998 5 Y3 1  .P00"
KEY3 = b"^n:ds[4U"
ANSWER = b"8jKS'y:G*Co,Wxa-"


@eventlet_websocket.WebSocketWSGI
def handler(ws: Any) -> None:
    if ws.path == "/echo":
        for message in ws:
            ws.send(message)
    elif ws.path == "/bad":
        ws.wait()  # an unknown frame type: ValueError
    else:
        ws.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Any]]:
    made: list[Any] = []

    def start(app: Callable = handler) -> Any:
        server = wsgi.WSGIServer(nettools.listen((LOCAL, 0)), app, log_output=False).start()
        made.append(server)
        return server

    yield start
    for server in made:
        server.stop(0)


def request(port: int, target: str, headers: list[str], tail: bytes = b"") -> bytes:
    return (
        "\r\n".join([f"GET {target} HTTP/1.1", f"Host: {LOCAL}:{port}", *headers])
        + "\r\n\r\n"
    ).encode() + tail


def draft76(origin: str = "http://example.com") -> list[str]:
    return [
        "Upgrade: WebSocket",
        "Connection: Upgrade",
        f"Origin: {origin}",
        "Sec-WebSocket-Protocol: chat",
        f"Sec-WebSocket-Key1: {KEY1}",
        f"Sec-WebSocket-Key2: {KEY2}",
    ]


def open_client(port: int, data: bytes) -> tuple[stdsocket.socket, bytes]:
    """Send ``data`` (an upgrade request) and read the response head (and what follows)."""
    sock = stdsocket.create_connection((LOCAL, port), timeout=T)
    sock.sendall(data)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk
    return sock, got


def read_until(sock: stdsocket.socket, have: bytes, want: bytes) -> bytes:
    while want not in have:
        chunk = sock.recv(4096)
        if not chunk:
            break
        have += chunk
    return have


def test_draft76_handshake_answers_the_challenge_and_echoes(serve):
    port = serve().address[1]

    def client() -> tuple[bytes, bytes, bytes]:
        sock, got = open_client(port, request(port, "/echo?x=1", draft76(), KEY3))
        got = read_until(sock, got, ANSWER)
        sock.sendall(b"\x00hello\xff")
        one = read_until(sock, b"", b"\xff")
        sock.sendall(b"\x00sta")  # a frame in two pieces
        sock.sendall(b"rt end\xff\x00caf\xc3\xa9\xff")
        two = read_until(sock, b"", b"\xa9\xff")
        sock.close()
        return got, one, two

    head, one, two = tpool.execute(client)
    assert head == (
        b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
        b"Upgrade: WebSocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Origin: http://example.com\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"Sec-WebSocket-Location: ws://127.0.0.1:%d/echo?x=1\r\n\r\n" % port + ANSWER
    )
    assert one == b"\x00hello\xff"
    assert two == b"\x00start end\xff\x00caf\xc3\xa9\xff"


def test_draft75_handshake_and_echo(serve):
    port = serve().address[1]
    headers = ["Upgrade: WebSocket", "Connection: Upgrade", "Origin: http://example.com"]

    def client() -> tuple[bytes, bytes]:
        sock, head = open_client(port, request(port, "/echo", headers))
        sock.sendall(b"\x00hi\xff")
        echoed = read_until(sock, b"", b"\xff")
        sock.close()
        return head, echoed

    head, echoed = tpool.execute(client)
    assert head == (
        b"HTTP/1.1 101 Web Socket Protocol Handshake\r\nUpgrade: WebSocket\r\n"
        b"Connection: Upgrade\r\nWebSocket-Origin: http://example.com\r\n"
        b"WebSocket-Location: ws://127.0.0.1:%d/echo\r\n\r\n" % port
    )
    assert echoed == b"\x00hi\xff"


def test_draft76_handler_close_sends_the_closing_frame(serve):
    port = serve().address[1]

    def client() -> bytes:
        sock, got = open_client(port, request(port, "/", draft76(), KEY3))
        got = read_until(sock, got, b"\x00\x00\x00")  # never there: read to EOF
        sock.close()
        return got

    assert tpool.execute(client).endswith(ANSWER + b"\xff\x00")


def watched(app: Callable) -> tuple[Callable, Event]:
    """``app``, and an event that gets how its call ended: "returned" or the exception."""
    ended = Event()

    def detector(environ: dict, start_response: Callable) -> Any:
        try:
            result = app(environ, start_response)
        except Exception as exc:
            ended.send(exc)
            raise
        ended.send("returned")
        return result

    return detector, ended


def test_unknown_frame_type_fails_the_app(serve):
    app, ended = watched(handler)
    port = serve(app).address[1]

    def client() -> None:
        sock, got = open_client(port, request(port, "/bad", draft76(), KEY3))
        sock.sendall(b"\xef\x00")
        read_until(sock, got, b"\x00\x00\x00")
        sock.close()

    tpool.execute(client)
    assert "unknown type" in str(ended.wait(T))


def test_peer_gone_while_sending_is_no_error(serve):
    @eventlet_websocket.WebSocketWSGI
    def flood(ws: Any) -> None:
        for _ in range(100000):
            ws.send("x" * 1000)

    app, ended = watched(flood)
    port = serve(app).address[1]

    def client() -> None:
        sock, _ = open_client(port, request(port, "/", draft76(), KEY3))
        linger_zero = struct.pack("ii", 1, 0)
        sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, linger_zero)
        sock.close()  # a reset: the handler's next send fails

    tpool.execute(client)
    assert ended.wait(T) == "returned"


def test_draft_message_size_is_bounded(serve):
    app, ended = watched(eventlet_websocket.WebSocketWSGI(handler.handler, max_message_size=1000))
    port = serve(app).address[1]

    def client() -> None:
        sock, _ = open_client(port, request(port, "/echo", draft76(), KEY3))
        try:
            sock.sendall(b"\x00" + b"y" * 5000)  # no end byte, ever
            read_until(sock, b"", b"\x00\x00\x00")
        except OSError:
            pass
        sock.close()

    tpool.execute(client)
    assert "over 1000 bytes" in str(ended.wait(T))


def test_graceful_stop_ends_an_idle_draft_connection(serve):
    server = serve()
    port = server.address[1]

    def opened() -> stdsocket.socket:
        sock, got = open_client(port, request(port, "/echo", draft76(), KEY3))
        read_until(sock, got, ANSWER)
        return sock

    sock = tpool.execute(opened)  # the hub serves the handshake meanwhile
    stopping = nettools.spawn(server.stop, T)
    try:
        rest = tpool.execute(read_until, sock, b"", b"\x00\x00\x00")  # until the server closes
    finally:
        sock.close()
    stopping.wait()
    assert rest == b"\xff\x00"


@pytest.mark.parametrize(
    "headers",
    [
        ["Upgrade: WebSocket", "Origin: http://example.com"],  # no Connection: Upgrade
        ["Connection: Upgrade", "Sec-WebSocket-Version: 13"],  # no Upgrade
        draft76()[:-1],  # draft 76 without its second key
        [  # RFC 6455 without Sec-WebSocket-Key
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
        ],
    ],
)
def test_refusals_are_eventlets_400(serve, headers):
    port = serve().address[1]

    def client() -> tuple[int, str | None, bytes]:
        conn = http.client.HTTPConnection(LOCAL, port, timeout=T)
        conn.request("GET", "/echo", headers=dict(h.split(": ", 1) for h in headers))
        resp = conn.getresponse()
        return resp.status, resp.getheader("connection"), resp.read()

    assert tpool.execute(client) == (400, "close", b"")


def test_app_wrapped_in_a_generator_can_take_the_connection(serve):
    def wrapper(environ: dict, start_response: Callable) -> Any:
        yield from handler(environ, start_response)

    port = serve(wrapper).address[1]

    def client() -> bytes:
        sock, got = open_client(port, request(port, "/echo", draft76(), KEY3))
        got = read_until(sock, got, ANSWER)
        sock.sendall(b"\x00wrapped\xff")
        echoed = read_until(sock, b"", b"\xff")
        sock.close()
        return got.split(b"\r\n")[0] + echoed

    assert tpool.execute(client) == b"HTTP/1.1 101 WebSocket Protocol Handshake\x00wrapped\xff"


def test_eventlets_websocket_class_is_the_draft_one():
    assert eventlet_websocket.WebSocket is websocket.HixieWebSocket
    assert issubclass(eventlet_websocket.WebSocketWSGI, websocket.WebSocketWSGI)
    assert eventlet_websocket.WebSocketWSGI(handler.handler).drafts
    assert eventlet_websocket.WebSocketWSGI(max_message_size=10)(handler.handler).drafts


def test_nettools_own_websocket_refuses_a_draft_client(serve):
    """Without ``drafts`` a client that sends no Sec-WebSocket-Version is refused."""
    server = serve(websocket.WebSocketWSGI(handler.handler))
    port = server.address[1]

    def client() -> bytes:
        sock, got = open_client(port, request(port, "/echo", draft76(), KEY3))
        sock.close()
        return got.split(b"\r\n")[0]

    assert tpool.execute(client) == b"HTTP/1.1 400 Bad Request"


RFC6455 = [
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: d9MXuOzlVQ0h+qRllvSCIg==",
]


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack("!BBIH", 0x88, 0x82, 0, 1000),  # a masked close frame, code 1000
        b"\x07\xff",  # a reserved opcode: the server fails the connection
    ],
)
def test_the_handler_ends_once_the_server_closed_its_side(serve, frame):
    # A client that never closes TCP must not hold the handler for close_timeout
    # (an hour here): the server closes first, as RFC 6455 has it.
    app, ended = watched(websocket.WebSocketWSGI(handler.handler, close_timeout=3600))
    port = serve(app).address[1]
    sock, _ = tpool.execute(open_client, port, request(port, "/echo", RFC6455))
    try:
        sock.sendall(frame)
        assert ended.wait(T) == "returned"
    finally:
        sock.close()


def test_an_extension_offer_is_read_without_regard_to_case_or_spaces(serve):
    port = serve().address[1]
    offer = "Sec-WebSocket-Extensions: PeRMessAGe-dEFlaTe;  Server_Max_Window_Bits  =  11"
    sock, head = tpool.execute(open_client, port, request(port, "/echo", [*RFC6455, offer]))
    sock.close()
    accepted = b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=11\r\n"
    assert accepted in head
