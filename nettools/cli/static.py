"""``nettools static DIR``: serve the files under a directory over HTTP."""

from __future__ import annotations

import logging
import os
from typing import Any

import typer

from ..tools.plumbing.httpmetrics import RequestMetrics
from ..tools.plumbing.service import serve_on
from ..tools.static import StaticServer, StaticStats
from .common import (
    LISTEN,
    METRICS,
    READY_FILE,
    drain_timeout_option,
    duration,
    opt,
    runtime_errors,
    server_tls,
    usage_error,
)

DRAIN_TIMEOUT = drain_timeout_option("for responses in flight")


def static(
    directory: str = typer.Argument(..., metavar="DIR", envvar="NETTOOLS_DIR",
                                    help="The directory to serve."),
    listen: Any = LISTEN,
    index: str = opt("index.html", "--index", metavar="NAME",
                     help='The file a directory is answered with ("" for none).'),
    listing: bool = typer.Option(True, "--listing/--no-listing", envvar="NETTOOLS_LISTING",
                                 help="List a directory that has no index file (else 403)."),
    follow_symlinks: bool = opt(False, "--follow-symlinks",
                                help="Also serve symbolic links that lead out of DIR."),
    hidden: bool = opt(False, "--hidden",
                       help="Also serve and list names starting with a dot "
                            "(.well-known is served either way)."),
    max_conns: int = opt(1000, "--max-conns", min=1, help="Most connections at once."),
    keepalive_timeout: Any = opt("75s", "--keepalive-timeout", parser=duration,
                                 help="Close a keep-alive connection idle this long (off: never)."),
    revalidate: Any = opt("1s", "--revalidate", parser=duration,
                          help="Look at a cached file on disk again at most this often "
                               "(0: on every request); a file changed on disk may be "
                               "served as it was for that long."),
    tls_cert: str = opt(None, "--tls-cert", metavar="PEM", help="Serve HTTPS with this cert."),
    tls_key: str = opt(None, "--tls-key", metavar="PEM",
                       help="Private key for --tls-cert (if not in the same file)."),
    access_log: bool = opt(False, "--access-log", help="Log each request on stderr."),
    drain_timeout: Any = DRAIN_TIMEOUT,
    ready_file: str = READY_FILE,
    metrics: Any = METRICS,
) -> None:
    """Serve the files under DIR over HTTP/1.1: GET and HEAD, ranges, 304s.

    Example: nettools static public/ --listen 127.0.0.1:8000

    Files go out with sendfile (small ones from a cache, in one send), with
    ETag and Last-Modified; If-None-Match and If-Modified-Since get 304,
    If-Match and If-Unmodified-Since 412; a Range (one range of bytes, or a
    suffix) gets 206, or 416 beyond the end of the file; several ranges get the
    whole file.  Media types come from Python's mimetypes.  A directory's URL
    without its slash is redirected to the one with it; a directory is
    answered with its index file, or a listing of its files.  Nothing outside
    DIR is ever served: ".." (plain or percent-encoded) cannot climb out, and
    symbolic links leading out of DIR are refused unless --follow-symlinks.
    Keep-alive, pipelining, and the limits of every nettools HTTP server
    (request line, headers, header timeout).
    """
    tls = server_tls("static", tls_cert, tls_key)
    if not os.path.isdir(directory):
        usage_error("static", f"not a directory: {directory}")
    if "/" in index:
        usage_error("static", f"--index is a file name, not a path: {index}")
    with runtime_errors("static"):
        stats = StaticStats()
        access = logging.getLogger("nettools.static.access") if access_log else None
        counted = None if metrics is None else RequestMetrics(stats, count_bytes=False).hook
        raise typer.Exit(serve_on("static", listen, lambda sock: StaticServer(
            sock, directory, index=index, listing=listing, follow_symlinks=follow_symlinks,
            hidden=hidden, max_conns=max_conns, keepalive_timeout=keepalive_timeout,
            revalidate=revalidate or 0.0, ssl_context=tls, access_log=access, stats=stats,
            on_request=counted,
        ).start().stop, stats, max_conns=max_conns, drain_timeout=drain_timeout,
            ready_file=ready_file, metrics=metrics, web="https" if tls else "http"))


def register(app: typer.Typer) -> None:
    app.command("static")(static)
