"""``nettools echo``: TCP (line or raw), UDP and unix-socket echo."""

from __future__ import annotations

from typing import Any

import typer

from ..tools.echo import EchoServer, UdpEchoServer
from ..tools.service import Stats
from .common import (
    address,
    duration,
    listen_on,
    opt,
    prepare_limits,
    runtime_errors,
    serve_until_stopped,
    size,
)


def echo(
    listen: Any = opt("127.0.0.1:0", "--listen", "-l", parser=address,
                      help="Address: host:port, [v6]:port or unix:/path (port 0 picks one)."),
    udp: bool = opt(False, "--udp", help="Echo UDP datagrams instead of a TCP stream."),
    raw: bool = opt(False, "--raw", help="Echo bytes as they come instead of whole lines."),
    max_line: Any = opt("64K", "--max-line", parser=size,
                        help="Line mode: longest line; a longer one ends that client."),
    max_conns: int = opt(10_000, "--max-conns", min=1, help="Most clients served at once."),
    idle_timeout: Any = opt("5m", "--idle-timeout", parser=duration,
                            help="Disconnect a client silent this long (off: never)."),
    drain_timeout: Any = opt("10s", "--drain-timeout", parser=duration,
                             help="On SIGINT/SIGTERM, wait this long for clients to finish."),
    ready_file: str = opt(None, "--ready-file", help="Also write the ready line to this file."),
) -> None:
    """Echo back what clients send.

    Example: nettools echo --listen 127.0.0.1:7000
    """
    with runtime_errors("echo"):
        stats = Stats()
        if udp:
            if listen.path is not None:
                raise ValueError("--udp needs a host:port address")
            sock = listen_on("echo", listen, udp=True)
            server: Any = UdpEchoServer(sock, stats).start()
        else:
            prepare_limits(max_conns)
            sock = listen_on("echo", listen)
            server = EchoServer(
                sock, raw=raw, max_line=max_line, idle_timeout=idle_timeout,
                max_conns=max_conns, stats=stats,
            ).start()
        serve_until_stopped(
            "echo", stats, [sock], [server.stop],
            drain_timeout=drain_timeout, ready_file=ready_file,
        )


def register(app: typer.Typer) -> None:
    app.command("echo")(echo)
