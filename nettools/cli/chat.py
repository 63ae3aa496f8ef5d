"""``nettools chat``: a multi-user line chat for telnet and nc clients."""

from __future__ import annotations

from typing import Any

import typer

from ..tools.chat.bus import ChatBus, parse_bus
from ..tools.chat.linechat import ChatServer, ChatStats
from ..tools.plumbing.service import serve_on
from .common import (
    LISTEN,
    METRICS,
    READY_FILE,
    SEND_BUFFER,
    SLOW_TIMEOUT,
    drain_timeout_option,
    duration,
    help_parts,
    opt,
    option_parser,
    queue_size_option,
    runtime_errors,
    size,
)

bus_endpoints = option_parser(parse_bus)

# The bus options of both chats (nettools chat and nettools wschat).
BUS = opt(None, "--bus", parser=bus_endpoints, metavar="PUB_EP,SUB_EP",
          help="Share rooms with other chat servers through a ZeroMQ forwarder: its "
               "publish (XSUB) and subscribe (XPUB) endpoints, e.g. "
               "tcp://hub:5555,tcp://hub:5556 (connected to; bind:URL binds).")
BUS_CHANNEL = opt("chat", "--bus-channel", metavar="NAME",
                  help="Topic prefix on the bus: chats on different channels do not meet.")
BUS_HEARTBEAT = opt("5s", "--bus-heartbeat", parser=duration,
                    help="How often this server tells the bus it is alive.")
BUS_EXPIRY = opt("15s", "--bus-expiry", parser=duration,
                 help="Drop the users of a server not heard from this long.")
BUS_MAX_MESSAGE = opt("64K", "--bus-max-message", parser=size,
                      help="Largest bus message sent or accepted.")

# The flood control of both chats.
RATE = opt(5.0, "--rate", min=0.01,
           help="Messages (lines) per second each client may send on average; one over it "
                "is refused, and a client that keeps on is disconnected as flooding.")
BURST = opt(10, "--burst", min=1, help="Messages (lines) a client may send at once.")

DRAIN_TIMEOUT = drain_timeout_option("to flush clients' queues")

BUS_HELP = """Several servers, on any machines, share rooms through a ZeroMQ forwarder
    (nettools zmq proxy --type forwarder): give each --bus PUB_EP,SUB_EP, the
    forwarder's frontend and backend.  nettools chat and nettools wschat
    servers can share one bus.  Users see each other's messages, joins,
    leaves and renames; user lists and history span the servers; a nickname
    used on any server is refused (two taken at the same instant: the later
    one is renamed).  Messages from one server keep their order everywhere;
    across servers each shows them as they arrive.  A server whose bus is
    down keeps serving its own users, logs one warning, and catches up when
    the bus is back; the users of a server not heard from for --bus-expiry
    are dropped.  Wire format: see nettools.tools.chat.bus_wire."""


def open_bus(
    endpoints: Any, channel: str, heartbeat: Any, expiry: Any, max_message: int
) -> ChatBus | None:
    """The ``ChatBus`` the bus options ask for, or None; bad values exit 2."""
    if endpoints is None:
        return None
    if heartbeat is None or expiry is None:
        raise typer.BadParameter("--bus-heartbeat and --bus-expiry cannot be off")
    try:
        return ChatBus(*endpoints, channel=channel, heartbeat=heartbeat, expiry=expiry,
                       max_message=max_message)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


#: Puts BUS_HELP into a chat command's help, where it says {bus}.
with_bus_help = help_parts(bus=BUS_HELP)


@with_bus_help
def chat(
    listen: Any = LISTEN,
    history: int = opt(20, "--history", min=0,
                       help="Messages of a room replayed to whoever joins it."),
    max_line: Any = opt("4K", "--max-line", parser=size,
                        help="Longest line a client may send; a longer one ends that client."),
    max_conns: int = opt(10_000, "--max-conns", min=1, help="Most clients connected at once."),
    rate: float = RATE,
    burst: int = BURST,
    idle_timeout: Any = opt("1h", "--idle-timeout", parser=duration,
                            help="Disconnect a client that sends nothing this long (off: never)."),
    slow_timeout: Any = SLOW_TIMEOUT,
    queue_size: int = queue_size_option("Lines"),
    send_buffer: Any = SEND_BUFFER,
    drain_timeout: Any = DRAIN_TIMEOUT,
    ready_file: str = READY_FILE,
    metrics: Any = METRICS,
    bus: Any = BUS,
    bus_channel: str = BUS_CHANNEL,
    bus_heartbeat: Any = BUS_HEARTBEAT,
    bus_expiry: Any = BUS_EXPIRY,
    bus_max_message: Any = BUS_MAX_MESSAGE,
) -> None:
    """A multi-user line chat for telnet and nc clients: nicknames, rooms, history.

    Example: nettools chat --listen 127.0.0.1:7000

    Clients connect with nc or telnet, choose a unique nickname and start in
    the room "lobby", where the last --history messages are replayed.
    Commands: /who, /rooms, /join ROOM, /nick NEW, /me ACTION, /quit, /help.
    Control characters that clients send are shown as text (ESC as ^[), so
    nobody can clear or recolour another user's terminal.

    Flooding: each client may send --rate lines a second, in bursts of
    --burst; a line over that is not said (the client is told), and a client
    that keeps sending while refused is disconnected ("flooding").

    Slow clients never delay the others: each client has its own queue.  When
    a client reads slowly, lines for it wait in that queue, up to --queue-size;
    while it is full, further lines for that client are dropped (it is told how
    many once it catches up).  A client that reads nothing for --slow-timeout
    while lines are dropped for it is disconnected, and its room is told "NICK
    was disconnected (too slow)"; one that reads, however slowly, only misses
    lines.  Messages reach everyone in the order the server received them.

    {bus}
    """
    with runtime_errors("chat"):
        if max_line < 1:
            raise typer.BadParameter("--max-line must be at least 1 byte")
        chat_bus = open_bus(bus, bus_channel, bus_heartbeat, bus_expiry, bus_max_message)
        stats = ChatStats()
        raise typer.Exit(serve_on("chat", listen, lambda sock: ChatServer(
            sock, history=history, max_line=max_line, max_conns=max_conns, rate=rate,
            burst=burst, idle_timeout=idle_timeout, slow_timeout=slow_timeout,
            queue_size=queue_size, send_buffer=send_buffer, stats=stats, bus=chat_bus,
        ).start().stop, stats, max_conns=max_conns, drain_timeout=drain_timeout,
            ready_file=ready_file, metrics=metrics))


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
