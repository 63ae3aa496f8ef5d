"""What the commands that fetch over HTTP share (``nettools fetch``,
``nettools feeds fetch``): their client options, the client built from them,
URL arguments, the polite stop on SIGINT/SIGTERM, the summary line and the exit status."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer

from ..tools.fetch import Halt, HttpClient, read_url_lines
from ..tools.plumbing.runmetrics import RunMetrics
from ..tools.plumbing.service import stop_on_signals
from .common import duration, fail, opt

__all__ = [
    "EXIT_FAILED", "INSECURE", "CA_FILE", "CONNECT_TIMEOUT", "read_timeout_option",
    "per_host_option", "client_from_options", "collect_urls", "stop_on_signals", "exit_status",
    "finish", "METRICS_FILE", "RunMetrics", "write_metrics_file",
]

#: Some fetches failed (the others were still done and reported).
EXIT_FAILED = 2

#: Stopped by a signal before any fetch failed: an interrupted run never passes.
EXIT_INTERRUPTED = 1


def exit_status(failed: int, interrupted: bool) -> int:
    """2 if any fetch failed, else 1 if stopped by a signal, else 0."""
    if failed:
        return EXIT_FAILED
    return EXIT_INTERRUPTED if interrupted else 0


def finish(command: str, noun: str, *, total: int, ok: int, unfetched: int, halt: Halt,
           start: float, run: RunMetrics | None = None, metrics_file: str | None = None,
           **extra: Any) -> None:  # fmt: skip
    """Write the run's summary line to stderr, marked ``interrupted`` when a signal
    stopped the run, and exit with ``exit_status``.  ``extra`` joins the counts.
    With ``metrics_file``, ``run``'s metrics are written there first."""
    failed = total - ok - unfetched
    summary = {"event": "done", "command": command, noun: total, "ok": ok, "failed": failed,
               **extra, "seconds": round(time.monotonic() - start, 3)}  # fmt: skip
    if halt.stopped:
        summary.update(interrupted=True, not_fetched=unfetched)
    sys.stderr.write(json.dumps(summary) + "\n")
    code = exit_status(failed, halt.stopped)
    if metrics_file is not None and run is not None:
        write_metrics_file(command, run, metrics_file, code)
    if code:
        raise typer.Exit(code)


METRICS_FILE = opt(None, "--metrics-file", metavar="PATH",
                   help="At the end, write the run's metrics to PATH in Prometheus' text "
                        "format (for node-exporter's textfile collector).")


def write_metrics_file(command: str, run: RunMetrics, path: str, code: int) -> None:
    """Write ``run``'s metrics to ``path``; failing to is one line and exit 1."""
    try:
        run.write(path, code)
    except OSError as exc:
        fail(command, f"cannot write --metrics-file: {exc.strerror or exc}: {path}")


INSECURE = opt(False, "--insecure", "-k", help="Do not verify TLS certificates.")
CA_FILE = opt(None, "--ca-file", metavar="PEM",
              help="Verify TLS against these CA certificates instead of certifi's.")
CONNECT_TIMEOUT = opt("10s", "--connect-timeout", parser=duration,
                      help="Longest wait for a connection.")


def read_timeout_option(default: str) -> Any:
    """``--read-timeout``: the longest silence while waiting for data."""
    return opt(default, "--read-timeout", parser=duration,
               help="Longest silence while waiting for data.")


def per_host_option(default: int) -> Any:
    """``--per-host``: connections to one host at once."""
    return opt(default, "--per-host", min=1, help="Connections to one host at once.")


def collect_urls(args: list[str]) -> list[str]:
    """The URL arguments, with ``-`` replaced by the URLs read from stdin."""
    urls: list[str] = []
    for arg in args:
        if arg == "-":
            urls.extend(read_url_lines(sys.stdin))
        else:
            urls.append(arg)
    return urls


def client_from_options(
    *,
    connect_timeout: float | None,
    read_timeout: float | None,
    max_body: int,
    max_redirects: int,
    per_host: int,
    user_agent: str | None,
    insecure: bool,
    ca_file: str | None,
    **extra: Any,
) -> HttpClient:
    """An ``HttpClient`` from the options the client commands share."""
    if max_body < 0:
        raise typer.BadParameter("must not be negative", param_hint="--max-body")
    return HttpClient(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_body=max_body,
        max_redirects=max_redirects,
        per_host=per_host,
        user_agent=user_agent,
        verify=not insecure,
        ca_file=ca_file,
        **extra,
    )
