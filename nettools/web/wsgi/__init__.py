"""A WSGI (PEP 3333) server on nettools' HTTP/1.1 connection handling.

    from nettools.web import wsgi

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, World!\\n"]

    wsgi.server(nettools.listen(("127.0.0.1", 8080)), app)   # blocks, as eventlet's

``server()`` takes eventlet's core arguments; ``WSGIServer`` is the same
server as an object with ``start``/``stop(timeout)``/``serve_forever``.  Both
take the same options, each defined and documented once in ``WSGIOptions``,
and both run on ``nettools.net.Server``: one greenthread per connection,
TCP_NODELAY, TLS handshakes per connection, and a graceful ``stop`` that closes
idle keep-alive connections at once while in-flight requests finish (their
responses carry ``Connection: close``).

nettools additions to the environ:

* ``nettools.posthooks`` (also ``eventlet.posthooks``): a list; append
  callables ``hook(environ)`` (or eventlet-style ``(hook, args, kwargs)`` tuples, called as
  ``hook(environ, *args, **kwargs)``).  They run after the response has been
  sent, or the client has gone.
* ``nettools.takeover()``: returns ``(sock, leftover)`` -- the raw connection
  and the bytes already received beyond this request.  The application then
  owns the connection: the server writes no response of its own, never reads
  from the socket again, iterates and closes whatever the application
  returns, runs the posthooks and closes the socket.  (For websockets.)
* ``nettools.set_idle(idle)``: mark the connection idle (True) or busy for a
  graceful stop; for protocols that run after a takeover.
* ``nettools.on_stop(closer)``: a graceful stop that finds the connection
  idle calls ``closer()`` (in its own greenthread) instead of shutting the
  socket down; for protocols that say goodbye (a websocket's close 1001).
* ``nettools.server``: the ``WSGIServer``.
* ``gunicorn.socket`` and ``werkzeug.socket``: the connection, where libraries
  written for gunicorn and Werkzeug look for it (simple-websocket, and through
  it Flask-SocketIO, python-engineio/python-socketio and Flask-Sock); their
  first read or write takes it over.  See ``handoff``.
* ``RAW_PATH_INFO``: the path as sent, still %-escaped (as eventlet's).

Bodies: ``str`` pieces are sent encoded as ASCII, as eventlet does (other
text is the application's error: a 500).

Inside: ``wsgiserver`` (the server and ``server()``), ``options``,
``connection`` (a connection's requests), ``response`` (what it sends),
``body`` (``wsgi.input``), ``environ``, ``accesslog``, ``handoff`` (the
connection under gunicorn's and Werkzeug's environ keys).
"""

from __future__ import annotations

from ..http import ChunkReadError, ClientDisconnected, HTTPError
from .accesslog import DEFAULT_LOG_FORMAT, AccessLog
from .connection import MINIMUM_CHUNK_SIZE, HttpProtocol, WSGIConnection
from .options import WSGIOptions
from .response import FileWrapper, plain_response
from .wsgiserver import WSGIServer, server

__all__ = [
    "server",
    "HttpProtocol",
    "WSGIConnection",
    "WSGIServer",
    "WSGIOptions",
    "FileWrapper",
    "AccessLog",
    "DEFAULT_LOG_FORMAT",
    "HTTPError",
    "ClientDisconnected",
    "ChunkReadError",
    "plain_response",
    "MINIMUM_CHUNK_SIZE",
]
