"""``nettools serve MODULE:APP``: serve any WSGI application."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from ..tools.plumbing.service import announce, describe_os_error, format_address, reserve_fds
from ..tools.serve import AppSpecError, ServeOptions, Supervisor, check_spec, run_single
from .common import EXIT_USAGE, duration, fail, opt, server_tls


def serve(
    spec: str = typer.Argument(..., metavar="MODULE:APP", envvar="NETTOOLS_APP",
                               help="The WSGI app: module (from the current directory) and "
                               "attribute, e.g. myapp:app or myapp:create_app()."),
    host: str = opt("127.0.0.1", "--host", help="Address to bind."),
    port: int = opt(8000, "--port", "-p", min=0, max=65535, help="Port (0 picks one)."),
    workers: int = opt(1, "--workers", "-w", min=1,
                       help="Worker processes sharing the port (SO_REUSEPORT), each with its "
                       "own hub; 1 serves in this process."),
    max_conns: int = opt(1024, "--max-conns", min=1, help="Most connections per worker."),
    tls_cert: str = opt(None, "--tls-cert", metavar="PATH", help="Serve HTTPS with this cert."),
    tls_key: str = opt(None, "--tls-key", metavar="PATH",
                       help="Private key for --tls-cert (if not in the cert file)."),
    access_log: bool = opt(False, "--access-log", help="Log every request to stderr."),
    keepalive_timeout: Any = opt("75s", "--keepalive-timeout", parser=duration,
                                 help="Close a keep-alive connection idle this long "
                                 "(off: never)."),
    drain_timeout: Any = opt("10s", "--drain-timeout", parser=duration,
                             help="On SIGINT/SIGTERM, wait this long for requests in flight."),
    patch: bool = typer.Option(True, "--patch/--no-patch", envvar="NETTOOLS_PATCH",
                               help="Monkey-patch the standard library before importing the "
                               "app, so its own database and HTTP clients go green."),
    ready_file: str = opt(None, "--ready-file", metavar="PATH",
                          help="Also write the ready line to this file."),
) -> None:
    """Serve a WSGI application (Flask, bottle, Django's WSGI handler).

    Example: nettools serve myapp:app --port 8000 --workers 4

    With --workers N the parent forks N workers; each opens its own listener on
    the same port (SO_REUSEPORT), so the kernel spreads connections over them.
    A worker that dies is restarted; SIGTERM or SIGINT stops all of them
    gracefully.  The ready line is printed once every worker listens.
    """
    # Each worker loads its own context; loading one here reports a missing or
    # bad cert or key as every server command does (exit 2), not as a listen error.
    server_tls("serve", tls_cert, tls_key)
    opts = ServeOptions(
        spec=spec, host=host, port=port, workers=workers, max_conns=max_conns,
        keepalive_timeout=keepalive_timeout, drain_timeout=drain_timeout,
        access_log=access_log, tls_cert=tls_cert, tls_key=tls_key, patch=patch,
    )

    def on_ready(address: str) -> None:
        announce("serve", address, ready_file, workers=workers)

    try:
        check_spec(spec)
        reserve_fds(max_conns)
        if workers == 1:
            summary = run_single(opts, on_ready)
        else:
            summary = Supervisor(opts).run(on_ready)
    except AppSpecError as exc:
        fail("serve", str(exc), EXIT_USAGE)
    except OSError as exc:
        text = describe_os_error(exc)  # a file (e.g. --ready-file) names itself
        fail("serve", text if exc.filename
             else f"cannot listen on {format_address((host, port))}: {text}")
    except (RuntimeError, ValueError) as exc:
        fail("serve", str(exc))
    sys.stderr.write(json.dumps(summary) + "\n")
    sys.stderr.flush()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
