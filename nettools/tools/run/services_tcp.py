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
    BALANCE,
    FDS_PER_CONNECTION,
    PROXY_PROTOCOLS,
    ApiServer,
    Forwarder,
    ForwardError,
    ForwardStats,
    RuleOptions,
    log_json_lines,
    open_resolved,
    parse_networks,
    parse_rule,
    parse_toxic_option,
    resolve_rules,
    target_tls_context,
    toxic_from_json,
    with_toxics,
)
from ..plumbing.service import Stats, listen_on, server_tls
from .options import (
    FLOOD_SETTINGS,
    SLOW_CLIENT_SETTINGS,
    TLS_SETTINGS,
    Context,
    Kind,
    Setting,
    SettingError,
    address,
    boolean,
    check_tls,
    choice,
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
        rate=v["rate"], burst=v["burst"],
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
        **FLOOD_SETTINGS,
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


def _toxics(value: Any, ctx: Context) -> tuple[Any, ...]:
    """Toxics as ``--toxic`` writes them, or as tables in Toxiproxy's JSON shape
    (with ``rule`` naming the one rule they go on)."""
    if not isinstance(value, list):
        raise ValueError("expected an array of toxics")
    toxics = []
    for item in value:
        if isinstance(item, str):
            toxics.append(parse_toxic_option(item))
        elif isinstance(item, dict):
            fields = dict(item)
            rule = fields.pop("rule", None)
            unknown = set(fields) - {"name", "type", "stream", "toxicity", "attributes"}
            if unknown:
                raise ValueError(f"toxic: unknown key {sorted(unknown)[0]!r} (Toxiproxy's "
                                 "shape: type, stream, toxicity, name, attributes)")
            try:
                toxics.append((rule, toxic_from_json(fields, static=True)))
            except ForwardError as exc:
                raise ValueError(f"toxic: {exc}") from None
        else:
            raise ValueError("a toxic is a string or a table")
    return tuple(toxics)


def _rule_options(v: dict[str, Any]) -> RuleOptions:
    return RuleOptions(
        balance=v["balance"], fail_timeout=v["fail-timeout"] or 0.0,
        health_check=v["health-check"], send_proxy=v["proxy-protocol"],
        accept_proxy=v["accept-proxy-protocol"], udp_ttl=v["udp-ttl"],
        udp_max_sessions=v["udp-max-sessions"],
    )


def _start_forward(name: str, v: dict[str, Any]) -> Started:
    specs = [parse_rule(spec.text, _rule_options(v)) for spec in v["rules"]]
    rules = open_resolved(resolve_rules(with_toxics(specs, v["toxics"])))

    def start() -> Started:
        targets = [t for rule in rules if not rule.udp for t in rule.targets]
        target_tls = None
        if v["tls-target"]:
            target_tls = target_tls_context(targets, v["tls-target-ca"],
                                            verify=not v["tls-target-insecure"])  # fmt: skip
        if v["json"]:
            log_json_lines()
        stats = ForwardStats()
        forwarder = Forwarder(
            rules, connect_timeout=v["connect-timeout"], idle_timeout=v["idle-timeout"],
            keepalive=v["keepalive"], max_conns=v["max-conns"], allow=v["allow"],
            deny=v["deny"], tls_context=server_tls(v["tls-cert"], v["tls-key"]),
            target_tls_context=target_tls, json_log=v["json"], stats=stats,
            splice=v["splice"], options=_rule_options(v),
        ).start()
        proxies = list(forwarder.proxies.values())
        listeners = [p.listener for p in proxies]
        extras = [{"rule": p.name, "target": p.upstream} for p in proxies]
        stops = [forwarder.stop]
        if v["api"] is not None:
            api = ApiServer(forwarder, v["api"]).start()
            listeners.append(api.socket)
            extras.append({"api": "toxiproxy"})
            stops.insert(0, api.stop)

        def stop(timeout: float | None) -> None:
            for each in stops:
                each(timeout)

        return Started(stats, listeners, stop, extras=extras, servers=forwarder.servers)

    return closing_on_error(lambda: [rule.listener.close() for rule in rules], start)


def _check_forward(v: dict[str, Any]) -> None:
    if not v["tls-target"] and (v["tls-target-ca"] is not None or v["tls-target-insecure"]):
        raise SettingError("tls-target-ca" if v["tls-target-ca"] else "tls-target-insecure",
                           "tls-target-ca and tls-target-insecure need tls-target = true")
    check_tls(v)
    try:
        with_toxics(list(v["rules"]), v["toxics"])
        _rule_options(v)
    except ValueError as exc:
        raise SettingError("toxics" if "toxic" in str(exc) else "rules", str(exc)) from None


FORWARD = Kind(
    "forward",
    {
        "rules": Setting(_rules, required=True),
        "api": Setting(address),
        "toxics": Setting(_toxics, []),
        "balance": Setting(choice(*BALANCE), "round-robin"),
        "fail-timeout": Setting(duration, "10s"),
        "health-check": Setting(duration, "off"),
        "proxy-protocol": Setting(choice(*PROXY_PROTOCOLS)),
        "accept-proxy-protocol": Setting(boolean, False),
        "udp-ttl": Setting(duration, "5m"),
        "udp-max-sessions": Setting(integer(1), 10_000),
        "connect-timeout": Setting(duration, "10s"),
        "idle-timeout": Setting(duration, "off"),
        "keepalive": Setting(duration, "60s"),
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
    fds_per_connection=FDS_PER_CONNECTION,
    summary="relay connections, rule by rule (nettools forward)",
)
