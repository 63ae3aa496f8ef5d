"""The raw connection under ``environ['gunicorn.socket']`` / ``['werkzeug.socket']``.

The application is simple-websocket, unmodified (the websocket layer of
Flask-SocketIO and python-engineio's threading mode), served by
``nettools.web.wsgi.server`` in a fresh interpreter under ``monkey_patch()``
(its reader is a thread).  The clients are unmodified ``websockets`` sync
clients, or a hand-made one where a test needs bytes on the wire in a
particular order.
"""

from __future__ import annotations

import os
import socket
import sys
import textwrap
from collections.abc import Iterator

import pytest
from helpers.process import Program
from helpers.wsgi import ServerThread
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect
from websockets.uri import parse_uri

pytestmark = pytest.mark.timeout(60)

T = 10  # seconds any single client-side wait may take before the test fails

SERVER = """
import json, sys
import nettools
nettools.monkey_patch()
import simple_websocket
from nettools.web import wsgi

def app(environ, start_response):
    if environ["PATH_INFO"] == "/ws":
        ws = simple_websocket.Server.accept(environ)
        try:
            while True:
                ws.send(ws.receive())
        except simple_websocket.ConnectionClosed:
            pass
        # As Flask-Sock and python-engineio end a request under gunicorn.
        raise StopIteration
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain http"]

sock = nettools.listen(("127.0.0.1", 0))
print(json.dumps({"event": "listening", "address": "127.0.0.1:%d" % sock.getsockname()[1]}),
      flush=True)
wsgi.server(sock, app, handle_signals=True, drain_timeout=10, log_output=False, max_size=MAX)
print("stopped", file=sys.stderr)
"""


@pytest.fixture
def server() -> Iterator[Program]:
    with _start(max_size=100) as prog:
        yield prog


def _start(max_size: int) -> Program:
    code = textwrap.dedent(SERVER).replace("MAX", str(max_size))
    return Program([sys.executable, "-c", code])


def _url(prog: Program) -> str:
    host, port = prog.tcp_address()
    return f"ws://{host}:{port}/ws"


def _quiet_stop(prog: Program) -> str:
    code, _, err = prog.stop()
    assert code == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
    return err


def test_simple_websocket_echoes_on_the_handed_over_connection(server: Program) -> None:
    url = _url(server)
    with connect(url, open_timeout=T, max_size=None) as ws:
        ws.send("hello")
        assert ws.recv(T) == "hello"
        # Far more than one send() takes (incompressible): simple-websocket
        # ignores short sends.
        big = os.urandom(8 << 20)
        ws.send(big)
        assert ws.recv(T) == big
    # A client that drops the connection without a close frame is no error either.
    with connect(url, open_timeout=T) as ws:
        ws.send("bye")
        assert ws.recv(T) == "bye"
        ws.socket.shutdown(socket.SHUT_RDWR)
    _quiet_stop(server)


def test_upgrade_after_keepalive_request_and_bytes_sent_before_the_101(server: Program) -> None:
    """The connection serves a plain request, then is taken over by the next one; a
    frame the client sent right behind its upgrade request reaches the application."""
    host, port = server.tcp_address()
    proto = ClientProtocol(parse_uri(f"ws://{host}:{port}/ws"))
    proto.send_request(proto.connect())
    upgrade = proto.data_to_send()[0]
    early = Frame(Opcode.TEXT, b"sent before the 101").serialize(mask=True, extensions=[])
    with socket.create_connection((host, port), timeout=T) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"plain http"):
            reply += sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200")
        sock.sendall(upgrade + early)  # one segment: the frame lands in the server's read
        texts: list[str] = []
        while not texts:
            data = sock.recv(65536)
            assert data, "closed before the echo"
            proto.receive_data(data)
            texts += [e.data.decode() for e in proto.events_received() if isinstance(e, Frame)]
        assert texts == ["sent before the 101"]
    _quiet_stop(server)


def test_connection_limit_counts_websockets() -> None:
    with _start(max_size=2) as prog:
        url = _url(prog)
        with connect(url, open_timeout=T), connect(url, open_timeout=T):
            with pytest.raises(TimeoutError):
                connect(url, open_timeout=0.5)  # waits in the backlog: the server is full
        with connect(url, open_timeout=T) as third:  # the first two have gone
            third.send("in")
            assert third.recv(T) == "in"
        _quiet_stop(prog)


def test_graceful_stop_closes_websockets_with_1001(server: Program) -> None:
    with connect(_url(server), open_timeout=T) as ws:
        ws.send("ping")
        assert ws.recv(T) == "ping"
        server.proc.send_signal(15)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(T)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    code, _, err = server.wait()
    assert code == 0 and "stopped" in err
    assert "Traceback" not in err and "ERROR" not in err, err


def test_without_monkey_patch_the_takeover_is_refused_in_one_line(caplog) -> None:
    """Thread-based code would block the server's only thread: one clear line, a 500."""
    simple_websocket = pytest.importorskip("simple_websocket")

    def app(environ, start_response):
        simple_websocket.Server.accept(environ)
        return []

    with ServerThread(app) as srv:
        with pytest.raises(InvalidStatus) as info:
            connect(f"ws://127.0.0.1:{srv.port}/", open_timeout=T)
        assert info.value.response.status_code == 500
    errors = [r for r in caplog.records if r.name == "nettools.web.wsgi"]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "monkey_patch()" in errors[0].getMessage()


def test_plain_requests_may_look_at_the_socket_without_taking_it(caplog) -> None:
    seen = []

    def app(environ, start_response):
        sock = environ["gunicorn.socket"]
        assert environ["werkzeug.socket"] is sock
        seen.append(sock.getpeername()[0])
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with ServerThread(app) as srv, socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.settimeout(T)
        for _ in range(2):  # the same connection serves both: nothing was taken over
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while not reply.endswith(b"ok"):
                reply += sock.recv(4096)
    assert seen == ["127.0.0.1", "127.0.0.1"]
