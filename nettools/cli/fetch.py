"""``nettools fetch``: fetch many URLs concurrently."""

from __future__ import annotations

import os
import sys
import time
from enum import Enum
from typing import Any

import typer

from ..tools.fetch import Halt, fetch_many
from .clientopts import (
    CA_FILE,
    CONNECT_TIMEOUT,
    EXIT_FAILED,
    INSECURE,
    METRICS_FILE,
    RunMetrics,
    client_from_options,
    collect_urls,
    finish,
    per_host_option,
    read_timeout_option,
    stop_on_signals,
)
from .common import duration, opt, runtime_errors, size

__all__ = ["fetch", "register", "parse_headers", "EXIT_FAILED", "client_from_options",
           "collect_urls"]

READ_TIMEOUT = read_timeout_option("30s")
PER_HOST = per_host_option(8)


class Order(str, Enum):
    input = "input"
    completion = "completion"


class Method(str, Enum):
    GET = "GET"
    HEAD = "HEAD"


def parse_headers(values: list[str] | None) -> dict[str, str]:
    """``Name: value`` strings as a dict; a malformed one is a usage error."""
    headers: dict[str, str] = {}
    for value in values or ():
        name, sep, text = value.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            raise typer.BadParameter(
                f"expected 'Name: value', got {value!r}", param_hint="--header"
            )
        headers[name] = text.strip()
    return headers


def fetch(
    urls: list[str] = typer.Argument(
        ..., metavar="URL", help="URLs to fetch; '-' reads more, one per line, from stdin."
    ),
    concurrency: int = opt(32, "--concurrency", "-c", min=1, help="Fetches in flight at once."),
    per_host: int = PER_HOST,
    method: Method = opt(
        Method.GET,
        "--method",
        "-X",
        case_sensitive=False,
        help="GET, or HEAD for status and headers only.",
    ),
    header: list[str] = opt(
        None, "--header", "-H", help="Extra request header 'Name: value' (repeatable)."
    ),
    json_out: bool = opt(False, "--json", help="One JSON object per URL instead of text lines."),
    order: Order = opt(
        Order.input, "--order", help="Print results in input order, or as they complete."
    ),
    output_dir: str = opt(
        None,
        "--output-dir",
        "-o",
        metavar="DIR",
        help="Save each body in DIR (created if missing) under a safe name.",
    ),
    connect_timeout: Any = CONNECT_TIMEOUT,
    read_timeout: Any = READ_TIMEOUT,
    timeout: Any = opt(
        "2m",
        "--timeout",
        parser=duration,
        help="Longest time for one whole fetch, redirects and body included, however "
        "steadily the server drips it (off: no limit).",
    ),
    max_body: Any = opt(
        "10M",
        "--max-body",
        parser=size,
        help="Keep at most this much of each body; longer ones are cut (marked '+' or truncated).",
    ),
    max_redirects: int = opt(10, "--max-redirects", min=0, help="Redirects followed per URL."),
    user_agent: str = opt(
        None,
        "--user-agent",
        metavar="TEXT",
        help="User-Agent header (default: nettools/VERSION (+project URL)).",
    ),
    insecure: bool = INSECURE,
    ca_file: str = CA_FILE,
    metrics_file: str = METRICS_FILE,
) -> None:
    """Fetch many URLs concurrently; one line per URL: status, size, time, final URL.

    Example: nettools fetch --concurrency 64 https://example.org/ https://example.com/

    Lines come in input order (--order completion: as fetches finish).  A
    failed fetch prints "ERR" and the reason instead of a status.  Redirects
    are followed (the line shows the final URL); a size ending in '+' was cut
    at --max-body.  HTTP(S)_PROXY and NO_PROXY are honoured.  A summary goes
    to stderr as one JSON line.

    Exit status: 0 if every URL answered below 400, 2 if any fetch failed
    (4xx/5xx or a transport error), 1 on a runtime error.

    SIGINT/SIGTERM stop politely: no new fetches, those in flight get 2s,
    then every URL still gets its line.  In input order the finished ones
    keep their places and the others say "ERR ... (interrupted: not
    fetched)" (kind "interrupted" with --json); in completion order those
    come last.  The summary says "interrupted"; the exit status is 2 if a
    fetch had failed, else 1: an interrupted run never passes.
    """
    with runtime_errors("fetch"):
        headers = parse_headers(header)
        client = client_from_options(
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_body=max_body,
            max_redirects=max_redirects, per_host=per_host, user_agent=user_agent,
            insecure=insecure, ca_file=ca_file, timeout=timeout,
        )  # fmt: skip
        if output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)
        targets = collect_urls(urls)
        start = time.monotonic()
        total = ok = unfetched = nbytes = 0
        run = RunMetrics("fetch") if metrics_file else None
        halt = Halt()
        with client, stop_on_signals(halt.stop):
            results = fetch_many(
                targets, client, concurrency=concurrency, ordered=order is Order.input,
                halt=halt, method=method.value, headers=headers, output_dir=output_dir,
            )  # fmt: skip
            for result in results:
                total += 1
                nbytes += result.size
                ok += result.ok
                unfetched += result.interrupted
                if run is not None and not result.interrupted:
                    run.request(result.status, result.elapsed, result.size, result.kind)
                sys.stdout.write((result.to_json() if json_out else result.line()) + "\n")
                sys.stdout.flush()
        finish("fetch", "urls", total=total, ok=ok, unfetched=unfetched, halt=halt, start=start,
               run=run, metrics_file=metrics_file, bytes=nbytes)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch)
