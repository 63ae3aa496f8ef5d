"""The services of a run file that speak plain TCP: ``echo``, ``chat``, ``forward``.

Each is its tool started through its public API, with the settings of its
command (``nettools echo --help`` and so on) and the same defaults.
"""

from __future__ import annotations

from typing import Any

from ..chat.bus import ChatBus, parse_bus
from ..chat.linechat import ChatServer, ChatStats
from ..echo import EchoServer, UdpEchoServer
from ..forward import (
    FDS_PER_CONNECTION,
    Forwarder,
    ForwardStats,
    log_json_lines,
    open_rules,
    parse_networks,
    parse_rule,
    target_tls_context,
)
from ..plumbing.service import Stats, listen_on, server_tls
from .options import (
    SLOW_CLIENT_SETTINGS,
    TLS_SETTINGS,
    Context,
    Kind,
    Setting,
    SettingError,
    boolean,
    check_tls,
    drain_setting,
    duration,
    integer,
    listen_setting,
    path,
    size,
    text,
    texts,
)
from .running import Started, closing_on_error

__all__ = ["ECHO", "CHAT", "FORWARD", "BUS_SETTINGS", "open_bus"]


# ---------------------------------------------------------------- echo


def _start_echo(name: str, v: dict[str, Any]) -> Started:
    stats = Stats()
    if v["udp"]:
        sock = listen_on(v["listen"], udp=True)
        return Started(stats, [sock], UdpEchoServer(sock, stats).start().stop)
    sock = listen_on(v["listen"])
    return closing_on_error(sock.close, lambda: Started(stats, [sock], EchoServer(
        sock, raw=v["raw"], max_line=v["max-line"], idle_timeout=v["idle-timeout"],
        max_conns=v["max-conns"], stats=stats,
    ).start().stop))


def _check_echo(v: dict[str, Any]) -> None:
    if v["udp"] and v["listen"].path is not None:
        raise SettingError("listen", "udp needs a host:port address, not a unix socket")


ECHO = Kind(
    "echo",
    {
        "listen": listen_setting(),
        "udp": Setting(boolean, False),
        "raw": Setting(boolean, False),
        "max-line": Setting(size, "64K"),
        "max-conns": Setting(integer(1), 10_000),
        "idle-timeout": Setting(duration, "5m"),
        "drain-timeout": drain_setting(),
    },
    _start_echo,
    check=_check_echo,
    summary="echo what clients send (lines, raw bytes or UDP datagrams)",
)


# ---------------------------------------------------------------- chat


def _bus_endpoints(value: Any, ctx: Context) -> Any:
    if isinstance(value, list):
        value = ",".join(texts(value, ctx))
    return parse_bus(text(value, ctx))


#: The settings of a chat server's bus (chat and wschat alike).
BUS_SETTINGS = {
    "bus": Setting(_bus_endpoints),
    "bus-channel": Setting(text, "chat"),
    "bus-heartbeat": Setting(duration, "5s"),
    "bus-expiry": Setting(duration, "15s"),
    "bus-max-message": Setting(size, "64K"),
}


def open_bus(v: dict[str, Any]) -> ChatBus | None:
    """The ``ChatBus`` the bus settings ask for, or None (no ``bus``)."""
    if v["bus"] is None:
        return None
    return ChatBus(*v["bus"], channel=v["bus-channel"], heartbeat=v["bus-heartbeat"],
                   expiry=v["bus-expiry"], max_message=v["bus-max-message"])  # fmt: skip


def check_bus(v: dict[str, Any]) -> None:
    """The bus timings cannot be off."""
    for key in ("bus-heartbeat", "bus-expiry"):
        if v["bus"] is not None and v[key] is None:
            raise SettingError(key, f"{key} cannot be off")


def _start_chat(name: str, v: dict[str, Any]) -> Started:
    bus = open_bus(v)
    stats = ChatStats()
    sock = listen_on(v["listen"])
    return closing_on_error(sock.close, lambda: Started(stats, [sock], ChatServer(
        sock, history=v["history"], max_line=v["max-line"], max_conns=v["max-conns"],
        idle_timeout=v["idle-timeout"], slow_timeout=v["slow-timeout"],
        queue_size=v["queue-size"], send_buffer=v["send-buffer"], stats=stats, bus=bus,
    ).start().stop))


def _check_chat(v: dict[str, Any]) -> None:
    if v["max-line"] < 1:
        raise SettingError("max-line", "max-line must be at least 1 byte")
    check_bus(v)


CHAT = Kind(
    "chat",
    {
        "listen": listen_setting(),
        "history": Setting(integer(0), 20),
        "max-line": Setting(size, "4K"),
        "max-conns": Setting(integer(1), 10_000),
        "idle-timeout": Setting(duration, "1h"),
        **SLOW_CLIENT_SETTINGS,
        "drain-timeout": drain_setting(),
        **BUS_SETTINGS,
    },
    _start_chat,
    check=_check_chat,
    summary="a line chat for telnet and nc clients",
)


# ---------------------------------------------------------------- forward


def _rules(value: Any, ctx: Context) -> tuple[Any, ...]:
    rules = texts(value, ctx)
    if not rules:
        raise ValueError("give at least one rule")
    return tuple(parse_rule(rule) for rule in rules)


def _networks(value: Any, ctx: Context) -> tuple[Any, ...]:
    return tuple(parse_networks(texts(value, ctx)))


def _start_forward(name: str, v: dict[str, Any]) -> Started:
    rules = open_rules([spec.text for spec in v["rules"]])

    def start() -> Started:
        targets = [rule.target for rule in rules]
        target_tls = None
        if v["tls-target"]:
            target_tls = target_tls_context(targets, v["tls-target-ca"],
                                            verify=not v["tls-target-insecure"])  # fmt: skip
        if v["json"]:
            log_json_lines()
        stats = ForwardStats()
        forwarder = Forwarder(
            rules, connect_timeout=v["connect-timeout"], idle_timeout=v["idle-timeout"],
            max_conns=v["max-conns"], allow=v["allow"], deny=v["deny"],
            tls_context=server_tls(v["tls-cert"], v["tls-key"]), target_tls_context=target_tls,
            json_log=v["json"], stats=stats, splice=v["splice"],
        ).start()
        return Started(stats, [rule.listener for rule in rules], forwarder.stop,
                       extras=[{"target": target.name} for target in targets])  # fmt: skip

    return closing_on_error(lambda: [rule.listener.close() for rule in rules], start)


def _check_forward(v: dict[str, Any]) -> None:
    if not v["tls-target"] and (v["tls-target-ca"] is not None or v["tls-target-insecure"]):
        raise SettingError("tls-target-ca" if v["tls-target-ca"] else "tls-target-insecure",
                           "tls-target-ca and tls-target-insecure need tls-target = true")
    check_tls(v)


#: Settings of ``nettools forward`` that its forwarder does not have yet in this
#: build: refused with the reason, never accepted and ignored.  This is the seam
#: where faults (toxics) and the Toxiproxy API join the run file once the
#: forwarder offers them through its Python API.
FORWARD_NOT_YET = {
    "toxics": "fault injection (toxics) is not available in this build's forwarder; "
              "remove it or use a nettools with fault injection",
    "api": "the Toxiproxy API is not available in this build's forwarder; "
           "remove it or use a nettools with fault injection",
}

FORWARD = Kind(
    "forward",
    {
        "rules": Setting(_rules, required=True),
        "connect-timeout": Setting(duration, "10s"),
        "idle-timeout": Setting(duration, "1h"),
        "max-conns": Setting(integer(1), 10_000),
        "allow": Setting(_networks, []),
        "deny": Setting(_networks, []),
        **TLS_SETTINGS,
        "tls-target": Setting(boolean, False),
        "tls-target-ca": Setting(path),
        "tls-target-insecure": Setting(boolean, False),
        "splice": Setting(boolean, True),
        "json": Setting(boolean, False),
        "drain-timeout": drain_setting(),
    },
    _start_forward,
    check=_check_forward,
    unsupported=FORWARD_NOT_YET,
    fds_per_connection=FDS_PER_CONNECTION,
    summary="relay connections, rule by rule (nettools forward)",
)
