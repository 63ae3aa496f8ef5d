"""Engine.IO's websocket transport on nettools' own websockets (``nettools.web.engineio_ws``).

A Flask-SocketIO app in its default "threading" mode, unmodified, served by
``nettools.web.wsgi.server`` in a fresh interpreter under ``monkey_patch()``.
Clients: python-socketio's, and ``websockets`` clients speaking Engine.IO by
hand where a test needs the close codes or a peer that misbehaves.
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from helpers.process import Program
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytest.importorskip("flask_socketio")
socketio = pytest.importorskip("socketio")

pytestmark = pytest.mark.timeout(60)

T = 10  # seconds any single client-side wait may take before the test fails
#: engineio's max_http_buffer_size in the app below.
LIMIT = 10_000

SERVER = """
import json, sys, time
import nettools
nettools.monkey_patch()
from flask import Flask, request
from flask_socketio import SocketIO, emit

app = Flask(__name__)
sio = SocketIO(app, async_mode="threading", max_http_buffer_size=LIMIT)

@sio.on("echo")
def echo(data):
    emit("echo", data)

@sio.on("kick")
def kick(data):
    # Ends the Engine.IO connection itself (disconnect() leaves only the namespace).
    sio.server.eio.disconnect(sio.server.manager.eio_sid_from_sid(request.sid, "/"))

@sio.on("task")
def task(data):
    def later():
        time.sleep(0.2)
        done.append(data)
    done = []
    t = sio.start_background_task(later)
    alive = t.is_alive()
    t.join(JOIN_TIMEOUT)
    return {"alive_before": alive, "alive_after": t.is_alive(), "done": done}

@app.get("/driver")
def driver():
    import engineio.async_drivers.threading as threading_mode
    return type(threading_mode._async["websocket"]).__name__ + " " + \\
        threading_mode._async["websocket"].__name__

if "SERVER" == "werkzeug":
    from nettools.web.engineio_ws import adopt_engineio
    from werkzeug.serving import make_server
    assert adopt_engineio()
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    print(json.dumps({"event": "listening", "address": "127.0.0.1:%d" % srv.port}), flush=True)
    srv.serve_forever()
else:
    from nettools.web import wsgi
    sock = nettools.listen(("127.0.0.1", 0))
    print(json.dumps({"event": "listening", "address": "127.0.0.1:%d" % sock.getsockname()[1]}),
          flush=True)
    wsgi.server(sock, app, handle_signals=True, drain_timeout=10, log_output=False)
    print("stopped", file=sys.stderr)
"""


def _start(server: str = "nettools") -> Program:
    code = textwrap.dedent(SERVER).replace("LIMIT", str(LIMIT)).replace("SERVER", server)
    code = code.replace("JOIN_TIMEOUT", str(T))
    return Program([sys.executable, "-c", code])


@pytest.fixture
def server() -> Iterator[Program]:
    with _start() as prog:
        yield prog


def _base(prog: Program) -> str:
    """``host:port`` of the server (waits for its ready line the first time)."""
    if not prog.ready_event:
        prog.ready()
    return prog.ready_event["address"]


def _quiet_stop(prog: Program) -> str:
    code, _, err = prog.stop()
    assert code == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
    return err


class EngineIO:
    """A Socket.IO client over a raw websocket: the Engine.IO and Socket.IO packets by hand."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        opened = self.ws.recv(T)
        assert isinstance(opened, str) and opened.startswith("0{"), opened
        self.ws.send("40")
        joined = self.ws.recv(T)
        assert isinstance(joined, str) and joined.startswith("40"), joined

    def emit(self, event: str, data: object) -> None:
        self.ws.send("42" + json.dumps([event, data]))

    def event(self) -> list:
        """The next event (Engine.IO pings are answered on the way)."""
        while True:
            packet = self.ws.recv(T)
            if packet == "2":
                self.ws.send("3")
                continue
            assert isinstance(packet, str) and packet.startswith("42"), packet
            return json.loads(packet[2:])


@contextmanager
def engineio(base: str) -> Iterator[EngineIO]:
    """An ``EngineIO`` client of the server at ``base``, joined to the default namespace."""
    with connect(f"ws://{base}/socket.io/?EIO=4&transport=websocket", open_timeout=T) as ws:
        yield EngineIO(ws)


def test_events_flow_over_both_transports_on_nettools_websockets(server: Program) -> None:
    base = _base(server)
    host, port = base.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=T) as sock:
        sock.sendall(b"GET /driver HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.endswith(b"type EngineIOWebSocket"), reply
    for transports in (["websocket"], ["polling", "websocket"]):
        client = socketio.SimpleClient()
        client.connect(f"http://{base}", transports=transports, wait_timeout=T)
        try:
            assert client.client.transport() == "websocket"
            for text in ("hello", "é" * 100, "x" * (LIMIT // 2)):
                client.emit("echo", text)
                assert client.receive(T) == ["echo", text]
        finally:
            client.disconnect()
    _quiet_stop(server)


def test_message_over_max_http_buffer_size_fails_with_1009(server: Program) -> None:
    with engineio(_base(server)) as client:
        client.emit("echo", "fits")
        assert client.event() == ["echo", "fits"]
        client.emit("echo", "x" * LIMIT)  # with the packet's framing: over the limit
        with pytest.raises(ConnectionClosed) as info:
            client.event()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    _quiet_stop(server)


def test_graceful_stop_closes_socketio_websockets_with_1001(server: Program) -> None:
    with engineio(_base(server)) as client:
        client.emit("echo", "ping")
        assert client.event() == ["echo", "ping"]
        server.proc.send_signal(15)
        with pytest.raises(ConnectionClosed) as info:
            client.event()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    code, _, err = server.wait()
    assert code == 0 and "stopped" in err
    assert "Traceback" not in err and "ERROR" not in err, err


def test_a_peer_that_leaves_the_close_unanswered_is_cut_off(server: Program) -> None:
    """The server disconnects a client that then never answers the close frame:
    the connection is shut down after engineio_ws.CLOSE_TIMEOUT (5 s)."""
    host, port = server.tcp_address()
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    with socket.create_connection((host, port), timeout=T) as sock:
        sock.sendall(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(4096)
        sock.sendall(_masked(b"40"))
        sock.sendall(_masked(b'42["kick",null]'))
        # The server's packets, its close frame, then the end (not a recv timeout),
        # though the client never answers the close.
        while chunk := sock.recv(4096):
            received += chunk
    assert b"\x88" in received.split(b"\r\n\r\n", 1)[1]  # the close frame
    _quiet_stop(server)


def _masked(payload: bytes) -> bytes:
    """A client's text frame (mask of zeros: the payload goes as is)."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def test_background_tasks_start_and_join_as_threads(server: Program) -> None:
    client = socketio.SimpleClient()
    client.connect(f"http://{_base(server)}", transports=["websocket"], wait_timeout=T)
    try:
        answer = client.call("task", "work", timeout=T)
    finally:
        client.disconnect()
    assert answer == {"alive_before": True, "alive_after": False, "done": ["work"]}
    _quiet_stop(server)


def test_other_servers_keep_simple_websocket() -> None:
    """Adopted in the process, the hook still serves a server without nettools'
    takeover (Werkzeug's, here) through the class it replaced."""
    with _start("werkzeug") as prog:
        client = socketio.SimpleClient()
        client.connect(f"http://{_base(prog)}", transports=["websocket"], wait_timeout=T)
        try:
            client.emit("echo", "via werkzeug")
            assert client.receive(T) == ["echo", "via werkzeug"]
        finally:
            client.disconnect()
        prog.stop()
