"""``nettools wschat``: a chat in the browser, over websockets."""

from __future__ import annotations

import logging
from typing import Any

import typer

from ..tools.chat.wschat import WSChatServer, WSChatStats
from ..tools.plumbing.service import Address, serve_on
from .chat import (
    BURST,
    BUS,
    BUS_CHANNEL,
    BUS_EXPIRY,
    BUS_HEARTBEAT,
    BUS_MAX_MESSAGE,
    RATE,
    open_bus,
    with_bus_help,
)
from .common import (
    METRICS,
    READY_FILE,
    SEND_BUFFER,
    SLOW_TIMEOUT,
    drain_timeout_option,
    duration,
    opt,
    queue_size_option,
    runtime_errors,
    server_tls,
)

DRAIN_TIMEOUT = drain_timeout_option("for clients to close")


@with_bus_help
def wschat(
    host: str = opt("127.0.0.1", "--host", help="Address to bind."),
    port: int = opt(8000, "--port", "-p", min=0, max=65535, help="Port (0 picks one)."),
    history: int = opt(50, "--history", min=0,
                       help="Messages of a room shown to whoever joins it."),
    max_conns: int = opt(10_000, "--max-conns", min=1,
                         help="Most connections (browsers and page loads) at once."),
    max_message: int = opt(2000, "--max-message", min=1,
                           help="Longest message in characters; a longer one is refused."),
    rate: float = RATE,
    burst: int = BURST,
    queue_size: int = queue_size_option(),
    slow_timeout: Any = SLOW_TIMEOUT,
    send_buffer: Any = SEND_BUFFER,
    idle_timeout: Any = opt("off", "--idle-timeout", parser=duration,
                            help="Disconnect a client that sends nothing this long (off: never)."),
    ping_interval: Any = opt("20s", "--ping-interval", parser=duration,
                             help="Websocket ping every so often (off: never)."),
    ping_timeout: Any = opt("20s", "--ping-timeout", parser=duration,
                            help="Drop a client that does not answer a ping this fast."),
    origin: list[str] = opt(None, "--origin", metavar="ORIGIN",
                            help="Accept websockets only from this page origin, e.g. "
                            "https://chat.example.com (repeat for more; default: any)."),
    tls_cert: str = opt(None, "--tls-cert", metavar="PEM", help="Serve HTTPS/WSS with this cert."),
    tls_key: str = opt(None, "--tls-key", metavar="PEM",
                       help="Private key for --tls-cert (if not in the same file)."),
    access_log: bool = opt(False, "--access-log", help="Log HTTP requests on stderr."),
    drain_timeout: Any = DRAIN_TIMEOUT,
    ready_file: str = READY_FILE,
    metrics: Any = METRICS,
    bus: Any = BUS,
    bus_channel: str = BUS_CHANNEL,
    bus_heartbeat: Any = BUS_HEARTBEAT,
    bus_expiry: Any = BUS_EXPIRY,
    bus_max_message: Any = BUS_MAX_MESSAGE,
) -> None:
    """A chat in the browser: open the address it prints and pick a nickname.

    Example: nettools wschat --port 8000

    One self-contained page (no CDN, works offline) with rooms (join or
    create), the room's online users, join/leave notices, the last --history
    messages on joining, and automatic reconnection with backoff after a
    dropped connection.  The page talks JSON over the websocket /chat (the
    schema is documented in nettools.tools.chat.wschat); /healthz answers JSON.

    Limits: --max-message characters per message, a token bucket of --rate
    messages a second (bursts of --burst) per client -- a message over it gets
    an error, and a client that keeps flooding is disconnected (close 1008).
    Slow browsers never delay the others: as in nettools chat, each client has
    its own queue of up to --queue-size messages; further ones are dropped for
    it (it is told how many), and a client that reads nothing for
    --slow-timeout while that happens is disconnected.  On SIGINT/SIGTERM
    every websocket is closed with 1001 (going away); the page reconnects
    when the server is back.

    {bus}
    """
    ssl_context = server_tls("wschat", tls_cert, tls_key)
    chat_bus = open_bus(bus, bus_channel, bus_heartbeat, bus_expiry, bus_max_message)
    with runtime_errors("wschat"):
        stats = WSChatStats()
        address = Address(host.strip("[]"), port)
        raise typer.Exit(serve_on("wschat", address, lambda sock: WSChatServer(
            sock, history=history, max_message=max_message, max_conns=max_conns, rate=rate,
            burst=burst, queue_size=queue_size, slow_timeout=slow_timeout,
            send_buffer=send_buffer, idle_timeout=idle_timeout, ping_interval=ping_interval,
            ping_timeout=ping_timeout, origins=origin or None, ssl_context=ssl_context,
            access_log=logging.getLogger("nettools.wschat.access") if access_log else None,
            stats=stats, bus=chat_bus,
        ).start().stop, stats, max_conns=max_conns, drain_timeout=drain_timeout,
            ready_file=ready_file, metrics=metrics, web="https" if ssl_context else "http"))


def register(app: typer.Typer) -> None:
    app.command("wschat")(wschat)
