"""The ZeroMQ services of a run file: ``zmq-proxy``, ``zmq-tcp``, ``zmq-ws`` (the
``nettools zmq`` commands), each with its own ZeroMQ context, closed when it stops.

The proxy's ``--type`` is ``proxy-type`` here (``type`` names the service).
"""

from __future__ import annotations

from typing import Any

from ..plumbing.service import listen_on, server_tls
from ..zmq import SocketSet
from ..zmq.fanout import BridgeStats
from ..zmq.proxy import PROXY_TYPES, ProxyStats, ZmqProxy
from ..zmq.tcpbridge import TcpBridge
from ..zmq.wsbridge import WsBridge
from .options import (
    SLOW_CLIENT_SETTINGS,
    TLS_SETTINGS,
    Context,
    Kind,
    Setting,
    SettingError,
    check_tls,
    choice,
    drain_setting,
    duration,
    endpoint,
    integer,
    listen_setting,
    size,
    texts,
)
from .running import Started, closing_on_error

__all__ = ["ZMQ_PROXY", "ZMQ_TCP", "ZMQ_WS"]


def _linger(value: Any, ctx: Context) -> float | None:
    # 0 drops what is queued at once here, where for other durations it means "none".
    if value == 0 or (isinstance(value, str) and value.strip() == "0"):
        return 0.0
    return duration(value, ctx)


ZMQ_SOCKET_SETTINGS = {
    "hwm": Setting(integer(0), 1000),
    "linger": Setting(_linger, "1s"),
}


def _sockets(v: dict[str, Any]) -> SocketSet:
    return SocketSet(hwm=v["hwm"], linger=v["linger"])


# ---------------------------------------------------------------- proxy


def _start_proxy(name: str, v: dict[str, Any]) -> Started:
    zsocks = SocketSet()

    def start() -> Started:
        stats = ProxyStats()
        device = ZmqProxy(
            zsocks.ctx, v["proxy-type"], v["frontend"], v["backend"], capture=v["capture"],
            control=v["control"], hwm=v["hwm"], linger=v["linger"], stats=stats,
        ).start()  # fmt: skip
        return Started(stats, [device.endpoints["frontend"]], device.stop,
                       extras=[{"type": v["proxy-type"], **device.endpoints}],
                       cleanup=[zsocks.close], ended=device.done)  # fmt: skip

    return closing_on_error(zsocks.close, start)


ZMQ_PROXY = Kind(
    "zmq-proxy",
    {
        "proxy-type": Setting(choice(*PROXY_TYPES), required=True),
        "frontend": Setting(endpoint, required=True),
        "backend": Setting(endpoint, required=True),
        "capture": Setting(endpoint),
        "control": Setting(endpoint),
        **ZMQ_SOCKET_SETTINGS,
    },
    _start_proxy,
    summary="a ZeroMQ queue, forwarder or streamer (nettools zmq proxy)",
)


# ---------------------------------------------------------------- tcp bridge


def _start_tcp(name: str, v: dict[str, Any]) -> Started:
    zsocks = _sockets(v)

    def start() -> Started:
        out = zsocks.open("pub", "PUB", v["pub"]) or zsocks.open("push", "PUSH", v["push"])
        sub = zsocks.open("sub", "SUB", v["sub"], maxmsgsize=v["max-line"])
        if sub is not None:
            for topic in v["topic"] or [""]:
                sub.subscribe(topic)
        sock = listen_on(v["listen"])
        stats = BridgeStats()
        bridge = TcpBridge(
            sock, out=out, sub=sub, max_line=v["max-line"], max_conns=v["max-conns"],
            idle_timeout=v["idle-timeout"], queue_size=v["queue-size"],
            slow_timeout=v["slow-timeout"], send_buffer=v["send-buffer"], stats=stats,
        ).start()  # fmt: skip
        return Started(stats, [sock], bridge.stop, extras=[zsocks.endpoints],
                       cleanup=[zsocks.close])  # fmt: skip

    return closing_on_error(zsocks.close, start)


def _check_tcp(v: dict[str, Any]) -> None:
    if v["pub"] is not None and v["push"] is not None:
        raise SettingError("push", "give pub or push, not both")
    if v["pub"] is None and v["push"] is None and v["sub"] is None:
        raise SettingError(None, "give pub, push or sub (or sub with one of the others)")
    if v["topic"] and v["sub"] is None:
        raise SettingError("topic", "topic needs sub")
    if v["max-line"] < 1:
        raise SettingError("max-line", "max-line must be at least 1 byte")


ZMQ_TCP = Kind(
    "zmq-tcp",
    {
        "listen": listen_setting(),
        "pub": Setting(endpoint),
        "push": Setting(endpoint),
        "sub": Setting(endpoint),
        "topic": Setting(texts, []),
        "max-line": Setting(size, "4K"),
        "max-conns": Setting(integer(1), 10_000),
        "idle-timeout": Setting(duration, "1h"),
        **SLOW_CLIENT_SETTINGS,
        **ZMQ_SOCKET_SETTINGS,
        "drain-timeout": drain_setting(),
    },
    _start_tcp,
    check=_check_tcp,
    summary="TCP line clients <-> ZeroMQ (nettools zmq tcp)",
)


# ---------------------------------------------------------------- websocket bridge


def _start_ws(name: str, v: dict[str, Any]) -> Started:
    tls = server_tls(v["tls-cert"], v["tls-key"])
    zsocks = _sockets(v)

    def start() -> Started:
        pub = zsocks.open("pub", "PUB", v["pub"])
        sub = zsocks.open("sub", "SUB", v["sub"], maxmsgsize=v["max-message"])
        sock = listen_on(v["listen"])
        stats = BridgeStats()
        bridge = WsBridge(
            pub=pub, sub=sub, max_message=v["max-message"],
            max_subscriptions=v["max-subscriptions"], queue_size=v["queue-size"],
            slow_timeout=v["slow-timeout"], send_buffer=v["send-buffer"], stats=stats,
            ping_interval=v["ping-interval"], ping_timeout=v["ping-interval"],
            origins=list(v["origin"]) or None,
        )  # fmt: skip
        stop = bridge.serve(sock, max_conns=v["max-conns"], ssl_context=tls)
        return Started(stats, [sock], stop, extras=[{"tls": tls is not None, **zsocks.endpoints}],
                       cleanup=[zsocks.close])  # fmt: skip

    return closing_on_error(zsocks.close, start)


def _check_ws(v: dict[str, Any]) -> None:
    if v["pub"] is None and v["sub"] is None:
        raise SettingError(None, "give sub, pub or both")
    if v["max-message"] < 1:
        raise SettingError("max-message", "max-message must be at least 1 byte")
    check_tls(v)


ZMQ_WS = Kind(
    "zmq-ws",
    {
        "listen": listen_setting(),
        "sub": Setting(endpoint),
        "pub": Setting(endpoint),
        "max-message": Setting(size, "64K"),
        "max-subscriptions": Setting(integer(1), 64),
        "max-conns": Setting(integer(1), 10_000),
        **SLOW_CLIENT_SETTINGS,
        "ping-interval": Setting(duration, "20s"),
        "origin": Setting(texts, []),
        **TLS_SETTINGS,
        **ZMQ_SOCKET_SETTINGS,
        "drain-timeout": drain_setting(),
    },
    _start_ws,
    check=_check_ws,
    summary="websocket clients <-> ZeroMQ PUB/SUB (nettools zmq ws)",
)
