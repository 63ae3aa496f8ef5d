"""``nettools echo``: TCP (line or raw), UDP and unix-socket echo."""

from __future__ import annotations

from typing import Any

import typer

from ..tools.echo import EchoServer, UdpEchoServer
from ..tools.plumbing.service import Stats, serve_on
from .common import (
    LISTEN,
    METRICS,
    READY_FILE,
    drain_timeout_option,
    duration,
    opt,
    runtime_errors,
    size,
)

DRAIN_TIMEOUT = drain_timeout_option("for clients to finish")


def echo(
    listen: Any = LISTEN,
    udp: bool = opt(False, "--udp", help="Echo UDP datagrams instead of a TCP stream."),
    raw: bool = opt(False, "--raw", help="Echo bytes as they come instead of whole lines."),
    max_line: Any = opt("64K", "--max-line", parser=size,
                        help="Line mode: longest line; a longer one ends that client."),
    max_conns: int = opt(10_000, "--max-conns", min=1, help="Most clients served at once."),
    idle_timeout: Any = opt("5m", "--idle-timeout", parser=duration,
                            help="Disconnect a client silent this long (off: never)."),
    drain_timeout: Any = DRAIN_TIMEOUT,
    ready_file: str = READY_FILE,
    metrics: Any = METRICS,
) -> None:
    """Echo back what clients send.

    Example: nettools echo --listen 127.0.0.1:7000
    """
    with runtime_errors("echo"):
        stats = Stats()
        if udp and listen.path is not None:
            raise ValueError("--udp needs a host:port address")

        def start(sock: Any) -> Any:
            if udp:
                return UdpEchoServer(sock, stats).start().stop
            return EchoServer(
                sock, raw=raw, max_line=max_line, idle_timeout=idle_timeout,
                max_conns=max_conns, stats=stats,
            ).start().stop

        raise typer.Exit(serve_on(
            "echo", listen, start, stats, max_conns=None if udp else max_conns, udp=udp,
            drain_timeout=drain_timeout, ready_file=ready_file, metrics=metrics,
        ))


def register(app: typer.Typer) -> None:
    app.command("echo")(echo)
