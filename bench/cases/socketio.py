"""Socket.IO echo over the websocket transport: one Flask-SocketIO app, three servers.

The app (``APP`` below, the same for every peer) answers each ``echo`` event by emitting it
back to its sender. Peers:

* ``nettools``: ``nettools serve`` (one worker), Flask-SocketIO in its default "threading" mode;
* ``gevent``: what ``socketio.run(app)`` runs in "gevent" mode: gevent's ``WSGIServer`` with
  gevent-websocket's handler, after ``gevent.monkey.patch_all()``;
* ``eventlet``: what ``socketio.run(app)`` runs in "eventlet" mode: ``eventlet.wsgi.server``,
  after ``eventlet.monkey_patch()``.

The load generator is ``bench/cases/websocket.py``'s (one uvloop process on the other core)
speaking Socket.IO: 100 clients open ``/socket.io/?EIO=4&transport=websocket``, join the
default namespace and then each keep one 64-byte ``echo`` event in flight; it parses only
frame headers. The same load from 100 python-socketio clients in one process (a thread each)
measures the clients instead: about 500 round trips/s against each of the three servers
alike (531 nettools, 544 gevent, 450 eventlet in one run), the clients' process at a quarter
of its core and every server under a fifth of its, the threads queueing for the GIL.

    python -m bench.cases.socketio serve PEER     # the app on PEER's server; prints its port
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from bench.cases import Case
from bench.cases.websocket import echo_case

HOST = "127.0.0.1"
PEERS = ("nettools", "gevent", "eventlet")
BACKLOG = 1024
#: The Flask-SocketIO mode each peer's server needs (the app reads it from the environment).
MODE_ENV = "BENCH_SOCKETIO_MODE"


def make_app() -> Any:
    """The Flask-SocketIO echo app, in the mode ``$BENCH_SOCKETIO_MODE`` names."""
    from flask import Flask
    from flask_socketio import SocketIO, emit

    app = Flask(__name__)
    socketio = SocketIO(app, async_mode=os.environ.get(MODE_ENV, "threading"))

    @socketio.on("echo")
    def echo(data: Any) -> None:
        emit("echo", data)

    return app


def _announce(port: int) -> None:
    print(json.dumps({"event": "listening", "port": port}), flush=True)


def _serve(peer: str) -> None:
    if peer == "gevent":
        from gevent import monkey

        monkey.patch_all()
        os.environ[MODE_ENV] = "gevent"
        from gevent import pywsgi
        from geventwebsocket.handler import WebSocketHandler

        server = pywsgi.WSGIServer(
            (HOST, 0), make_app(), handler_class=WebSocketHandler, log=None, backlog=BACKLOG
        )
        server.start()
        _announce(server.server_port)
        server.serve_forever()
    elif peer == "eventlet":
        import eventlet

        eventlet.monkey_patch()
        os.environ[MODE_ENV] = "eventlet"
        import eventlet.wsgi

        sock = eventlet.listen((HOST, 0), backlog=BACKLOG)
        _announce(sock.getsockname()[1])
        eventlet.wsgi.server(sock, make_app(), log_output=False)


#: ``nettools serve`` imports the app as MODULE:APP; this module, with the factory.
APP_SPEC = "bench.cases.socketio:make_app()"


def _server_command(peer: str) -> list[str]:
    if peer == "nettools":
        return [sys.executable, "-m", "nettools", "serve", APP_SPEC, "--port", "0"]
    return [sys.executable, "-m", "bench.cases.socketio", "serve", peer]


CASES: dict[str, Case] = {
    "socketio_echo_c100_64": echo_case(
        PEERS, _server_command, "Socket.IO server", 100, 64, socketio=True
    ),
}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "serve" and argv[1] in PEERS[1:]:
        _serve(argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
