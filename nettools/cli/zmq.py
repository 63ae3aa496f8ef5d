"""``nettools zmq ...``: ZeroMQ proxies and bridges on the green hub.

* ``zmq proxy``: a queue, forwarder or streamer with capture, control and counts.
* ``zmq tcp``: TCP line clients <-> PUB/PUSH/SUB sockets.
* ``zmq ws``: websocket clients <-> PUB/SUB sockets, a small JSON protocol.

Endpoints are ``bind:URL`` or ``connect:URL``; a bare URL binds.  Port 0 (or
``*``) in a bound ``tcp://`` URL picks a free port; the ready line shows it.
A malformed endpoint is a usage error (exit 2); one that cannot be bound
(address in use) a runtime error (exit 1).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import typer

from ..tools.plumbing.service import listen_on, reserve_fds, run_service
from ..tools.zmq import EndpointError, SocketSet, parse_endpoint
from ..tools.zmq.fanout import BridgeStats
from ..tools.zmq.proxy import ProxyStats, ZmqProxy
from ..tools.zmq.tcpbridge import TcpBridge
from ..tools.zmq.wsbridge import WsBridge
from .common import (
    LISTEN,
    METRICS,
    READY_FILE,
    SEND_BUFFER,
    SLOW_TIMEOUT,
    drain_timeout_option,
    duration,
    opt,
    option_parser,
    queue_size_option,
    runtime_errors,
    server_tls,
    size,
    usage_error,
)

zmq_app = typer.Typer(
    name="zmq",
    help="ZeroMQ proxies and bridges on the green hub.\n\n"
    "Endpoints: bind:URL or connect:URL; a bare URL binds (tcp://127.0.0.1:0 picks a port).",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

endpoint = option_parser(parse_endpoint)


def _linger(text: Any) -> Any:
    # "0" means drop at once here, not "no limit" as for other durations.
    if isinstance(text, str) and text.strip() == "0":
        return 0.0
    return duration(text)


class ProxyType(str, Enum):
    queue = "queue"
    forwarder = "forwarder"
    streamer = "streamer"


# Help shared by every command.
_HWM_HELP = "High-water mark (messages queued per peer) of each ZeroMQ socket; 0: no limit."
_LINGER_HELP = ("On exit, how long to keep delivering queued ZeroMQ messages "
                "(0: drop them; off: no limit).")
# Options shared by every command.
HWM = opt(1000, "--hwm", min=0, help=_HWM_HELP)
LINGER = opt("1s", "--linger", parser=_linger, metavar="DURATION", help=_LINGER_HELP)
QUEUE_SIZE = queue_size_option()
MAX_CONNS = opt(10_000, "--max-conns", min=1, help="Most clients connected at once.")
TCP_DRAIN_TIMEOUT = drain_timeout_option("to flush clients' queues")
WS_DRAIN_TIMEOUT = drain_timeout_option("for clients to finish")


@zmq_app.command("proxy")
def proxy(
    kind: ProxyType = opt(..., "--type", "-t", show_default=False,
                          help="queue (ROUTER/DEALER), forwarder (XSUB/XPUB) or "
                               "streamer (PULL/PUSH)."),
    frontend: Any = opt(..., "--frontend", "-f", parser=endpoint, metavar="EP",
                        show_default=False,
                        help="Where clients (REQ/DEALER, PUB, PUSH) talk to the proxy."),
    backend: Any = opt(..., "--backend", "-b", parser=endpoint, metavar="EP",
                       show_default=False,
                       help="Where workers (REP/DEALER, SUB, PULL) talk to the proxy."),
    capture: Any = opt(None, "--capture", parser=endpoint, metavar="EP",
                       help="A PUB socket that gets a copy of every message, either way."),
    control: Any = opt(None, "--control", parser=endpoint, metavar="EP",
                       help="A REP socket taking PAUSE, RESUME, TERMINATE, STATISTICS."),
    hwm: int = HWM,
    linger: Any = LINGER,
    ready_file: str = READY_FILE,
    metrics: Any = METRICS,
) -> None:
    """A ZeroMQ proxy: queue, forwarder or streamer, with capture and control.

    Example: nettools zmq proxy -t forwarder -f tcp://127.0.0.1:5555 -b tcp://127.0.0.1:5556

    Multipart messages pass whole.  The ready line names the endpoints in use:
    {"event": "listening", "service": "zmq-proxy", "address": FRONTEND,
    "type": ..., "frontend": ..., "backend": ..., "capture": ..., "control": ...}

    Control (REP): send one frame PAUSE, RESUME or TERMINATE (reply "OK"), or
    STATISTICS (reply: a JSON object {"frontend_to_backend": {"messages": N,
    "bytes": N}, "backend_to_frontend": {...}, "captured": N, "paused": BOOL,
    "seconds": S}; bytes count every frame).

    The same counts go to stderr as one JSON line on SIGUSR1 ("event":
    "stats") and at exit ("event": "stopped").  SIGINT, SIGTERM and TERMINATE
    stop the proxy and exit 0.
    """
    command = "zmq proxy"
    with runtime_errors(command):
        zsocks = SocketSet()  # a context for the proxy's sockets, ended at exit
        try:
            stats = ProxyStats()
            try:
                device = ZmqProxy(
                    zsocks.ctx, kind.value, frontend, backend, capture=capture,
                    control=control, hwm=hwm, linger=linger, stats=stats,
                )
            except EndpointError as exc:
                usage_error(command, exc)
            device.start()
            code = run_service(
                "zmq-proxy", stats, [device.endpoints["frontend"]], [device.stop],
                ready_file=ready_file, drain_timeout=None, ended=device.done, metrics=metrics,
                ready_extras=[{"type": kind.value, **device.endpoints}],
            )
        finally:
            zsocks.close()
        raise typer.Exit(code)


@zmq_app.command("tcp")
def tcp(
    listen: Any = LISTEN,
    pub: Any = opt(None, "--pub", parser=endpoint, metavar="EP",
                   help="Publish the clients' lines on a PUB socket here."),
    push: Any = opt(None, "--push", parser=endpoint, metavar="EP",
                    help="Push the clients' lines on a PUSH socket here "
                         "(a client waits while no peer takes them)."),
    sub: Any = opt(None, "--sub", parser=endpoint, metavar="EP",
                   help="Send every message of a SUB socket here to every client, as a line."),
    topics: list[str] = opt([], "--topic", metavar="T",
                            help="Subscribe --sub to this topic prefix (repeatable; "
                                 "default: everything)."),
    max_line: Any = opt("4K", "--max-line", parser=size,
                        help="Longest line a client may send (a longer one ends that "
                             "client), and longest message taken from --sub (a longer "
                             "one is dropped, counted and logged)."),
    max_conns: int = MAX_CONNS,
    idle_timeout: Any = opt("1h", "--idle-timeout", parser=duration,
                            help="Disconnect a client that sends nothing this long "
                                 "(off: never)."),
    slow_timeout: Any = SLOW_TIMEOUT,
    queue_size: int = QUEUE_SIZE,
    send_buffer: Any = SEND_BUFFER,
    hwm: int = HWM,
    linger: Any = LINGER,
    drain_timeout: Any = TCP_DRAIN_TIMEOUT,
    ready_file: str = READY_FILE,
    metrics: Any = METRICS,
) -> None:
    """Bridge TCP line clients and ZeroMQ, both ways.

    Example: nettools zmq tcp --listen 127.0.0.1:7000 --pub connect:tcp://127.0.0.1:5555 --sub connect:tcp://127.0.0.1:5556

    Each line a client sends (without its line ending) becomes a one-frame
    message on --pub or --push.  Each message from --sub goes to every client
    as one line (frames joined by a space; CR and LF shown as spaces).  Give
    --sub, and --pub or --push, or both.

    Slow clients never delay the others: each has its own queue of up to
    --queue-size lines; while it is full, lines for that client are dropped
    (it is told how many once it catches up, in a line starting "*** "), and
    a client that reads nothing for --slow-timeout while its queue is full is
    disconnected (one that reads, however slowly, only misses lines).

    The ready line adds the endpoints in use: {"event": "listening",
    "service": "zmq-tcp", "address": ..., "pub": ..., "sub": ...}.  SIGUSR1
    prints the counts so far on stderr; SIGINT/SIGTERM drain and print them.
    """
    command = "zmq tcp"
    with runtime_errors(command):
        if pub is not None and push is not None:
            usage_error(command, "give --pub or --push, not both")
        if pub is None and push is None and sub is None:
            usage_error(command, "give --pub, --push or --sub (or --sub with one of the others)")
        if topics and sub is None:
            usage_error(command, "--topic needs --sub")
        if max_line < 1:
            usage_error(command, "--max-line must be at least 1 byte")
        reserve_fds(max_conns)
        zsocks = SocketSet(hwm=hwm, linger=linger)
        try:
            try:
                out = zsocks.open("pub", "PUB", pub) or zsocks.open("push", "PUSH", push)
                subsock = zsocks.open("sub", "SUB", sub)
            except EndpointError as exc:
                usage_error(command, exc)
            if subsock is not None:
                for topic in topics or [""]:
                    subsock.subscribe(topic)
            sock = listen_on(listen)
            stats = BridgeStats()
            bridge = TcpBridge(
                sock, out=out, sub=subsock, max_line=max_line, max_conns=max_conns,
                idle_timeout=idle_timeout, queue_size=queue_size, slow_timeout=slow_timeout,
                send_buffer=send_buffer, stats=stats,
            ).start()
            code = run_service(
                "zmq-tcp", stats, [sock], [bridge.stop], ready_file=ready_file, metrics=metrics,
                drain_timeout=drain_timeout, ready_extras=[zsocks.endpoints],
            )
        finally:
            zsocks.close()
        raise typer.Exit(code)


@zmq_app.command("ws")
def ws(
    listen: Any = LISTEN,
    sub: Any = opt(None, "--sub", parser=endpoint, metavar="EP",
                   help="A SUB socket here delivers the topics clients subscribe to."),
    pub: Any = opt(None, "--pub", parser=endpoint, metavar="EP",
                   help="What clients publish goes out on a PUB socket here."),
    max_message: Any = opt("64K", "--max-message", parser=size,
                           help="Largest message either way (a larger one from a client "
                                "closes it with 1009; from ZeroMQ it is dropped, counted "
                                "and logged)."),
    max_subscriptions: int = opt(64, "--max-subscriptions", min=1,
                                 help="Topics one client may subscribe to."),
    max_conns: int = MAX_CONNS,
    slow_timeout: Any = SLOW_TIMEOUT,
    queue_size: int = QUEUE_SIZE,
    send_buffer: Any = SEND_BUFFER,
    ping_interval: Any = opt("20s", "--ping-interval", parser=duration,
                             help="Ping each client this often; one that does not answer "
                                  "within as long is closed (off: never)."),
    origins: list[str] = opt([], "--origin", metavar="ORIGIN",
                             help="Accept only browsers from this Origin (repeatable; "
                                  "default: any)."),
    tls_cert: str = opt(None, "--tls-cert", metavar="PEM",
                        help="Serve wss:// with this certificate (chain)."),
    tls_key: str = opt(None, "--tls-key", metavar="PEM",
                       help="Private key for --tls-cert (if not in the same file)."),
    hwm: int = HWM,
    linger: Any = LINGER,
    drain_timeout: Any = WS_DRAIN_TIMEOUT,
    ready_file: str = READY_FILE,
    metrics: Any = METRICS,
) -> None:
    """Bridge websocket clients (browsers) and ZeroMQ PUB/SUB.

    Example: nettools zmq ws --listen 127.0.0.1:8080 --sub connect:tcp://127.0.0.1:5556 --pub connect:tcp://127.0.0.1:5555

    One JSON object per text message.  From the client: {"subscribe": "T"}
    (a topic prefix; "" is everything), {"unsubscribe": "T"}, {"publish":
    {"topic": "T", "data": ANY}}.  To the client: {"topic": "T", "data": ANY},
    {"subscribed": "T"}, {"unsubscribed": "T"}, {"error": "WHY"}, and
    {"dropped": N} when it missed N messages by reading too slowly.

    On the ZeroMQ side a message is two frames: the topic, and the data as
    JSON (data that is not JSON reaches clients as a string).

    Slow clients never delay the others (see 'nettools zmq tcp --help').
    """
    command = "zmq ws"
    with runtime_errors(command):
        if pub is None and sub is None:
            usage_error(command, "give --sub, --pub or both")
        if max_message < 1:
            usage_error(command, "--max-message must be at least 1 byte")
        tls = server_tls(command, tls_cert, tls_key)
        reserve_fds(max_conns)
        zsocks = SocketSet(hwm=hwm, linger=linger)
        try:
            try:
                pubsock = zsocks.open("pub", "PUB", pub)
                subsock = zsocks.open("sub", "SUB", sub)
            except EndpointError as exc:
                usage_error(command, exc)
            sock = listen_on(listen)
            stats = BridgeStats()
            bridge = WsBridge(
                pub=pubsock, sub=subsock, max_message=max_message,
                max_subscriptions=max_subscriptions, queue_size=queue_size,
                slow_timeout=slow_timeout, send_buffer=send_buffer, stats=stats,
                ping_interval=ping_interval,
                ping_timeout=ping_interval, origins=origins or None,
            )
            stop = bridge.serve(sock, max_conns=max_conns, ssl_context=tls)
            code = run_service(
                "zmq-ws", stats, [sock], [stop], ready_file=ready_file, metrics=metrics,
                drain_timeout=drain_timeout,
                ready_extras=[{"tls": tls is not None, **zsocks.endpoints}],
            )
        finally:
            zsocks.close()
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.add_typer(zmq_app, name="zmq")
