"""A Flask app served by ``nettools serve``: many slow requests at once, no threads.

``nettools serve`` monkey-patches the standard library before importing the
app (``--patch``, the default), so the ``time.sleep`` below -- like the app's
own database or HTTP client calls -- yields to other requests instead of
blocking the worker.  ``--workers N`` pre-forks N processes sharing the port.

Run it:  nettools serve flask_app:app --port 8000 --workers 2   (from recipes/)
Try it:  curl http://127.0.0.1:8000/  and  curl http://127.0.0.1:8000/slow?ms=500
"""

from __future__ import annotations

import os
import time

from flask import Flask, jsonify, request

import nettools

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


def create_app() -> Flask:
    """A factory, for ``nettools serve 'flask_app:create_app()'``."""
    return app
