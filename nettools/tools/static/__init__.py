"""A static file server: the files under a directory over HTTP/1.1.

By seam:

* ``paths``: from a request target to a path under the root, and nothing
  outside it (dot segments, encoded forms, NUL bytes, symbolic links, hidden
  names);
* ``files``: what is known of a file (identity, ``ETag``, ``Last-Modified``,
  media type from ``mimetypes``) and the cache of it, checked on every use;
* ``conditional``: preconditions (304, 412) and single byte ranges (206, 416);
* ``listing``: a directory's index page (names escaped);
* ``server``: ``StaticServer`` -- the requests of each connection on
  ``nettools.web.http``, files sent with ``sendfile``.

Usable without the CLI::

    from nettools.net import listen
    from nettools.tools.static import StaticServer
    srv = StaticServer(listen(("127.0.0.1", 0)), "public").start()
    print(srv.address)
"""

from .server import MAX_REQUEST_BODY, StaticServer, StaticStats

__all__ = ["StaticServer", "StaticStats", "MAX_REQUEST_BODY"]
