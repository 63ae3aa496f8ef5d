"""``nettools serve MODULE:APP``: serve any WSGI application."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from ..tools.plumbing.service import (
    announce,
    describe_os_error,
    format_address,
    reserve_fds,
    web_url,
)
from ..tools.serve import (
    ACCESS_LOG_FORMATS,
    AppSpecError,
    ServeOptions,
    Supervisor,
    check_spec,
    run_single,
    use_app_path,
)
from .common import EXIT_USAGE, METRICS, duration, fail, json_logs, opt, server_tls, usage_error


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
    access_log: str = opt(None, "--access-log", metavar="FILE|-",
                          help="Log every request to FILE (appended to) or - (stderr)."),
    access_log_format: str = opt(None, "--access-log-format", metavar="[combined|json]",
                                 help="The access log's lines: Apache's combined format, or "
                                 "JSON objects (default: json with --log-format json)."),
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
    chdir: str = opt(None, "--chdir", metavar="DIR",
                     help="Change to DIR first: the app is imported from there."),
    pythonpath: str = opt(None, "--pythonpath", metavar="DIR[,DIR...]",
                          help="Also look for the app (and its imports) in these directories."),
    metrics: Any = METRICS,
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
    if access_log_format is None:
        access_log_format = "json" if json_logs() else "combined"
    if access_log_format not in ACCESS_LOG_FORMATS:
        usage_error("serve", f"--access-log-format must be one of {', '.join(ACCESS_LOG_FORMATS)}")
    if metrics is not None and metrics.path is not None:
        usage_error("serve", "--metrics takes host:port")
    opts = ServeOptions(
        spec=spec, host=host, port=port, workers=workers, max_conns=max_conns,
        keepalive_timeout=keepalive_timeout, drain_timeout=drain_timeout,
        access_log=access_log, access_log_format=access_log_format, tls_cert=tls_cert,
        tls_key=tls_key, patch=patch,
        metrics=None if metrics is None else (metrics.host, metrics.port),
    )

    def on_ready(address: str, **extra: Any) -> None:
        url = web_url("https" if tls_cert else "http", address)
        announce("serve", address, ready_file, url=url, workers=workers, **extra)

    try:
        use_app_path(chdir, [p for p in (pythonpath or "").split(",") if p])
        if access_log not in (None, "-"):
            open(access_log, "a").close()  # fail now, not in every worker
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
