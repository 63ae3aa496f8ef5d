"""What ``nettools serve`` knows about Socket.IO applications across several workers.

Workers share a port (SO_REUSEPORT), so the kernel hands each connection to any
of them.  A Socket.IO (Engine.IO) session over long-polling is a series of
HTTP requests on different connections: with several workers they land on
different workers, each of which knows nothing of the session ("Invalid
session").  Over the websocket transport a session is one connection, so it
stays on one worker; an emit to a room then reaches the room's members on the
other workers only through a message queue (python-socketio's client
managers: Redis, Kombu, ...).

``worker_warnings(app, workers)`` finds the Engine.IO server behind a WSGI app
(Flask-SocketIO's, or python-socketio's and python-engineio's ``WSGIApp``) and
says, in one line each, what cannot work and what to do.  Nothing is imported
here: a library the application did not load is not there to find.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["find_engineio_server", "worker_warnings"]

#: How far to follow ``wsgi_app`` attributes (Flask's, middleware's) from the app.
_MAX_DEPTH = 8


def find_engineio_server(app: Any) -> Any | None:
    """The ``socketio.Server`` or ``engineio.Server`` that ``app`` serves, or None."""
    engineio = sys.modules.get("engineio")
    if engineio is None:
        return None
    obj = app
    for _ in range(_MAX_DEPTH):
        if isinstance(obj, engineio.WSGIApp):
            return obj.engineio_app
        obj = getattr(obj, "wsgi_app", None)
        if obj is None:
            return None
    return None


def worker_warnings(app: Any, workers: int) -> list[str]:
    """What will not work when ``app`` is served by ``workers`` workers (one line each)."""
    server = find_engineio_server(app)
    if server is None or workers <= 1:
        return []
    eio = getattr(server, "eio", server)  # socketio.Server wraps an engineio.Server
    warnings = []
    if "polling" in (getattr(eio, "transports", None) or ()):
        warnings.append(
            f"Socket.IO long-polling cannot work across {workers} workers (a session's "
            "requests reach different workers: 'Invalid session'); allow the websocket "
            "transport only (SocketIO(app, transports=['websocket']), and the same in the "
            "clients), or serve with --workers 1 or behind a proxy with sticky sessions"
        )
    socketio = sys.modules.get("socketio")
    manager = getattr(server, "manager", None)
    if socketio is not None and manager is not None:
        if not isinstance(manager, socketio.PubSubManager):
            warnings.append(
                f"Socket.IO emits reach only the clients of the worker that sends them "
                f"across {workers} workers; give the server a message queue "
                "(SocketIO(app, message_queue='redis://...'))"
            )
    return warnings
