"""``nettools serve`` with Socket.IO apps: Flask-SocketIO's default mode with real
websockets, and several workers (what works, and the line that says what does not).

Clients are python-socketio's, unmodified; the message queue of several workers is
Debian's redis-server on a unix socket.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import Cli
from helpers.paths import RECIPES, ROOT
from helpers.socketio import ChatClient, RedisServer

pytest.importorskip("flask_socketio")
socketio = pytest.importorskip("socketio")

pytestmark = pytest.mark.timeout(90)

T = 10

APP = '''
from flask import Flask
from flask_socketio import SocketIO, emit

app = Flask(__name__)
socketio = SocketIO(app)  # no async_mode: Flask-SocketIO picks what it can import


@app.get("/mode")
def mode():
    return socketio.async_mode


@socketio.on("echo")
def echo(data):
    emit("echo", data)
    return "ack " + data
'''

#: Importing either fails, as in an environment that has neither.
BLOCKED = 'raise ImportError("not installed in this environment")\n'

LONG_POLLING = "long-polling cannot work across"
NO_QUEUE = "emits reach only the clients of the worker"


@pytest.fixture
def appdir(tmp_path: Path) -> Path:
    (tmp_path / "sioapp.py").write_text(APP)
    for name in ("eventlet", "gevent"):
        (tmp_path / f"{name}.py").write_text(BLOCKED)
    return tmp_path


class Serve(Cli):
    """``nettools serve`` in a process group of its own (its workers die with it)."""

    def __init__(self, cwd: Path, *args: str, env: dict | None = None) -> None:
        path = os.pathsep.join([str(cwd), str(ROOT)])
        super().__init__(
            "serve", "--port", "0", *args, env={"PYTHONPATH": path, **(env or {})}, cwd=cwd,
            group=True,
        )  # fmt: skip
        self.host, self.port = self.tcp_address(30)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _quiet_stop(server: Serve) -> str:
    code, _, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
    return err


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
def test_default_mode_without_eventlet_or_gevent_serves_websockets(
    appdir: Path, transports: list[str]
) -> None:
    import urllib.request

    with Serve(appdir, "sioapp:app") as server:
        with urllib.request.urlopen(server.url + "/mode", timeout=T) as resp:
            assert resp.read() == b"threading"
        client = socketio.Client(reconnection=False)
        echoed = []
        client.on("echo", echoed.append)
        client.connect(server.url, transports=transports, wait_timeout=T)
        try:
            assert client.transport() == "websocket"  # straight away, or upgraded
            assert client.call("echo", "hello", timeout=T) == "ack hello"
            assert echoed == ["hello"]
        finally:
            client.disconnect()
        _quiet_stop(server)


def test_several_workers_say_once_what_cannot_work(appdir: Path) -> None:
    with Serve(appdir, "sioapp:app", "--workers", "2") as server:
        err = _quiet_stop(server)
    lines = err.splitlines()
    assert sum(LONG_POLLING in line for line in lines) == 1, err
    assert sum(NO_QUEUE in line for line in lines) == 1, err
    assert any("transports=['websocket']" in line for line in lines)
    with Serve(appdir, "sioapp:app") as server:  # one worker: nothing to say
        err = _quiet_stop(server)
    assert LONG_POLLING not in err and NO_QUEUE not in err


def _join(client: ChatClient, name: str, room: str) -> dict:
    """Join, and return once the client's own join notice came back through the queue.

    A worker subscribes to the queue on its first connection, in the background,
    so its first notices may go by before it listens: join again (bounded)."""
    for _ in range(5):
        ack = client.join(name, room)
        assert ack["ok"], ack
        try:
            client.expect("notice", text=f"{name} joined")
            return ack
        except AssertionError:
            continue
    raise AssertionError(f"{name}'s worker never heard its own join notice")


def test_websocket_clients_across_workers_share_rooms_through_redis(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as redis, Serve(
        RECIPES, "socketio_chat:app", "--workers", "2",
        env={"SOCKETIO_MESSAGE_QUEUE": redis.url},
    ) as server:  # fmt: skip
        ada = ChatClient(server.url, ["websocket"])
        ada_worker = _join(ada, "ada", "den")["worker"]
        bob = None
        for _ in range(30):  # until the kernel gives a connection to the other worker
            candidate = ChatClient(server.url, ["websocket"])
            if _join(candidate, "bob", "den")["worker"] != ada_worker:
                bob = candidate
                break
            candidate.close()
        assert bob is not None, "every connection went to one worker"
        assert ada.expect("users", users=["ada", "bob"])  # the list spans the workers
        assert bob.say("hello from the other worker") == {"ok": True}
        got = ada.expect("message", name="bob")
        assert got["text"] == "hello from the other worker"
        ada.say("and back")
        assert bob.expect("message", name="ada")["text"] == "and back"
        bob.close()
        ada.expect("notice", text="bob left")
        ada.expect("users", users=["ada"])
        ada.close()
        err = _quiet_stop(server)
    assert LONG_POLLING not in err and NO_QUEUE not in err
