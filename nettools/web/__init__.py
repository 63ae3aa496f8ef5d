"""Protocols on green I/O for the web.

* ``nettools.web.http``: HTTP/1.1 requests read off a connection with a sans-I/O
  parser (httptools): keep-alive, pipelining, chunked bodies, limits, timeouts.
* ``nettools.web.wsgi``: a WSGI (PEP 3333) server on it, run by
  ``nettools.net.Server``: ``wsgi.server(sock, app)`` or ``wsgi.WSGIServer``,
  both configured by one ``wsgi.WSGIOptions``.
* ``nettools.web.websocket``: websockets for WSGI applications, on the
  connection the WSGI server hands over (``environ['nettools.takeover']``).
* ``nettools.web.client``: ``HttpClient``, libcurl driven by the hub.

Each of ``wsgi``, ``websocket`` and ``client`` is a package whose ``__init__``
is its public face; the modules inside hold one part each.
"""

from __future__ import annotations

__all__: list[str] = []
