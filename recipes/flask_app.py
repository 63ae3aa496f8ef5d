"""A Flask app served by ``nettools serve``: many slow requests at once, no threads.

``nettools serve`` monkey-patches the standard library before importing the
app (``--patch``, the default), so the ``time.sleep`` below -- like the app's
own database or HTTP client calls -- yields to other requests instead of
blocking the worker.  ``--workers N`` pre-forks N processes sharing the port.
A websocket route, ``/ws`` (an echo), lives beside the Flask views: Flask
answers with a response object, while a websocket takes the connection over, so
it is mounted as WSGI middleware around ``app.wsgi_app``.

Run it:  nettools serve flask_app:app --port 8000 --workers 2   (from recipes/)
Try it:  curl http://127.0.0.1:8000/  and  curl http://127.0.0.1:8000/slow?ms=500
         python -m websockets ws://127.0.0.1:8000/ws
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, jsonify, request

import nettools
from nettools.web import websocket

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "Hello from Flask on nettools!\n"


@app.get("/slow")
def slow() -> dict:
    """Sleep ``ms`` milliseconds (at most 10 s): green when patched."""
    ms = min(max(request.args.get("ms", 100, type=int), 0), 10_000)
    time.sleep(ms / 1000)
    return {"slept_ms": ms}


@app.get("/info")
def info() -> object:
    """Which worker answered, and whether its stdlib is green."""
    return jsonify(pid=os.getpid(), patched=nettools.is_monkey_patched("time"))


@websocket.WebSocketWSGI
def echo(ws: websocket.WebSocket) -> None:
    """Send every message back; returning closes the websocket."""
    for message in ws:
        ws.send(message)


def with_websockets(wsgi_app: Any) -> Any:
    """``/ws`` to the websocket echo, everything else to Flask."""

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/ws":
            return echo(environ, start_response)
        return wsgi_app(environ, start_response)

    return dispatch


app.wsgi_app = with_websockets(app.wsgi_app)  # type: ignore[method-assign]


def create_app() -> Flask:
    """A factory, for ``nettools serve 'flask_app:create_app()'``."""
    return app
