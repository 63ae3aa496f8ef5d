"""``nettools chat``: a multi-user line chat for telnet and nc clients."""

from __future__ import annotations

from typing import Any

import typer

from ..tools.chat import ChatServer, ChatStats
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


def chat(
    listen: Any = opt("127.0.0.1:0", "--listen", "-l", parser=address,
                      help="Address: host:port, [v6]:port or unix:/path (port 0 picks one)."),
    history: int = opt(20, "--history", min=0,
                       help="Messages of a room replayed to whoever joins it."),
    max_line: Any = opt("4K", "--max-line", parser=size,
                        help="Longest line a client may send; a longer one ends that client."),
    max_conns: int = opt(10_000, "--max-conns", min=1, help="Most clients connected at once."),
    idle_timeout: Any = opt("1h", "--idle-timeout", parser=duration,
                            help="Disconnect a client that sends nothing this long (off: never)."),
    slow_timeout: Any = opt("5s", "--slow-timeout", parser=duration,
                            help="Disconnect a client whose queue stays full this long "
                            "(off: never, it just misses messages)."),
    queue_size: int = opt(256, "--queue-size", min=1,
                          help="Lines queued per client before it counts as slow."),
    send_buffer: Any = opt("64K", "--send-buffer", parser=size,
                           help="Kernel send buffer per client (0: the system's default)."),
    drain_timeout: Any = opt("10s", "--drain-timeout", parser=duration,
                             help="On SIGINT/SIGTERM, wait this long to flush clients' queues."),
    ready_file: str = opt(None, "--ready-file", metavar="PATH",
                          help="Also write the ready line to this file."),
) -> None:
    """A multi-user line chat for telnet and nc clients: nicknames, rooms, history.

    Example: nettools chat --listen 127.0.0.1:7000

    Clients connect with nc or telnet, choose a unique nickname and start in
    the room "lobby", where the last --history messages are replayed.
    Commands: /who, /rooms, /join ROOM, /nick NEW, /me ACTION, /quit, /help.
    Control characters that clients send are shown as text (ESC as ^[), so
    nobody can clear or recolour another user's terminal.

    Slow clients never delay the others: each client has its own queue.  When
    a client stops reading, lines for it wait in that queue, up to --queue-size;
    while it is full, further lines for that client are dropped (it is told how
    many once it catches up) and its slow clock runs.  The clock stops when the
    client has read its queue down to half.  A client whose queue stays full for
    --slow-timeout is disconnected, and its room is told "NICK was disconnected
    (too slow)".  Messages reach everyone in the order the server received them.
    """
    with runtime_errors("chat"):
        if max_line < 1:
            raise typer.BadParameter("--max-line must be at least 1 byte")
        stats = ChatStats()
        prepare_limits(max_conns)
        sock = listen_on("chat", listen)
        server = ChatServer(
            sock, history=history, max_line=max_line, max_conns=max_conns,
            idle_timeout=idle_timeout, slow_timeout=slow_timeout, queue_size=queue_size,
            send_buffer=send_buffer, stats=stats,
        ).start()
        serve_until_stopped(
            "chat", stats, [sock], [server.stop],
            drain_timeout=drain_timeout, ready_file=ready_file,
        )


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
