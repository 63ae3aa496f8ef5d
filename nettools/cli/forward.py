"""``nettools forward``: relay TCP and unix-socket connections to targets, rule by rule."""

from __future__ import annotations

import logging
import ssl as _stdlib_ssl
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import typer

from ..green import socket
from ..green import ssl as _gssl
from ..tools.forward import (
    Forwarder,
    ForwardStats,
    Rule,
    Target,
    parse_networks,
    resolve_target,
    unix_target,
)
from ..tools.plumbing.service import Address, listen_on, parse_address, reserve_fds, run_service
from .common import drain_timeout_option, duration, opt, runtime_errors, server_tls, usage_error

DRAIN_TIMEOUT = drain_timeout_option("for connections to end")

RULE_SYNTAX = "[LISTEN_HOST:]LISTEN_PORT:[TARGET_HOST:]TARGET_PORT"
#: fds one connection may hold: client, target, and a pipe (two fds) per direction.
FDS_PER_CONN = 6


@dataclass(frozen=True)
class RuleSpec:
    """A parsed rule: where to listen and where to connect, before any lookup."""

    text: str
    listen: Address
    target: Address


def _split_rule(text: str) -> tuple[str, str]:
    """Cut a rule into its listen and target addresses.

    The listen side ends at the colon after its port (or after ``unix:PATH``,
    whose path therefore cannot hold a colon); the target takes the rest.
    """
    if text.startswith("unix:"):
        cut = text.find(":", 5)
    elif text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ValueError("an IPv6 listen address needs the form [ADDR]:PORT")
        cut = text.find(":", close + 2)
    else:
        first = text.find(":")
        if first < 0:
            cut = -1
        elif first == 0 or text[:first].isdigit():
            cut = first  # no listen host: "PORT:..." (or a bad empty host, caught below)
        else:
            cut = text.find(":", first + 1)
    if cut < 0 or cut == len(text) - 1:
        raise ValueError("missing target port")
    return text[:cut], text[cut + 1 :]


def parse_rule(text: str) -> RuleSpec:
    """``7000:22``, ``0.0.0.0:7000:db:5432``, ``[::1]:7000:[::1]:22``,
    ``unix:/run/a.sock:22``, ``7000:unix:/run/b.sock`` -> a ``RuleSpec``.

    Hosts default to 127.0.0.1; raises ``ValueError`` with a one-line reason.
    """
    text = text.strip()
    try:
        listen_text, target_text = _split_rule(text)
        if not listen_text or listen_text.startswith(":"):
            raise ValueError("empty listen host (IPv6 addresses go in brackets)")
        if target_text.count(":") > 1 and not target_text.startswith(("[", "unix:")):
            raise ValueError("too many colons in the target (IPv6 addresses go in brackets)")
        listen = parse_address(listen_text)
        target = parse_address(target_text)
    except ValueError as exc:
        raise ValueError(f"invalid rule {text!r}: {exc} (use {RULE_SYNTAX})") from None
    if target.path is None and target.port == 0:
        raise ValueError(f"invalid rule {text!r}: the target port cannot be 0")
    return RuleSpec(text, listen, target)


def _usage(message: str) -> NoReturn:
    usage_error("forward", message)


def _resolve_listen(spec: RuleSpec) -> Address:
    addr = spec.listen
    if addr.path is not None or socket._is_numeric(addr.host):
        return addr
    try:
        infos = socket.getaddrinfo(
            addr.host, addr.port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except OSError as exc:
        _usage(f"cannot resolve {addr.host!r} in rule {spec.text!r}: {_reason(exc)}")
    return Address(infos[0][4][0], addr.port)


def _resolve_target(spec: RuleSpec) -> Target:
    addr = spec.target
    if addr.path is not None:
        return unix_target(addr.path)
    try:
        return resolve_target(addr.host, addr.port)
    except OSError as exc:
        _usage(f"cannot resolve {addr.host!r} in rule {spec.text!r}: {_reason(exc)}")


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _target_tls(enabled: bool, ca: str | None, insecure: bool, targets: list[Target]) -> Any:
    if not enabled:
        if ca is not None or insecure:
            _usage("--tls-target-ca and --tls-target-insecure need --tls-target")
        return None
    try:
        ctx = _gssl.create_default_context(cafile=ca)
    except (OSError, _stdlib_ssl.SSLError) as exc:
        _usage(f"cannot load --tls-target-ca: {_reason(exc)}")
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = _gssl.CERT_NONE
    elif any(t.host is None for t in targets):
        _usage("--tls-target to a unix socket has no host name to verify; "
               "add --tls-target-insecure")
    return ctx


def _json_lines() -> None:
    """Connection lines become bare JSON objects on stderr (no log prefix)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("nettools.forward")
    logger.handlers[:] = [handler]
    logger.propagate = False


def forward(
    rules: list[str] = typer.Argument(
        ..., metavar="RULE", envvar="NETTOOLS_RULES", show_default=False,
        help=f"{RULE_SYNTAX}; hosts default to 127.0.0.1, listen port 0 picks one. "
             "IPv6 as [ADDR]:PORT, unix sockets as unix:/PATH on either side.",
    ),
    connect_timeout: Any = opt("10s", "--connect-timeout", parser=duration,
                               help="Give up connecting to a target (and each TLS "
                                    "handshake) after this long."),
    idle_timeout: Any = opt("1h", "--idle-timeout", parser=duration,
                            help="Close a connection with no bytes either way this long "
                                 "(off: never)."),
    max_conns: int = opt(10_000, "--max-conns", min=1,
                         help="Most connections forwarded at once, over all rules."),
    allow: list[str] = opt([], "--allow", metavar="CIDR",
                           help="Only accept clients in this network (repeatable)."),
    deny: list[str] = opt([], "--deny", metavar="CIDR",
                          help="Refuse clients in this network (repeatable; wins over --allow)."),
    tls_cert: str = opt(None, "--tls-cert", metavar="PEM",
                        help="Terminate TLS from clients with this certificate (chain)."),
    tls_key: str = opt(None, "--tls-key", metavar="PEM",
                       help="Private key for --tls-cert (if not in the same file)."),
    tls_target: bool = opt(False, "--tls-target", help="Speak TLS to the targets."),
    tls_target_ca: str = opt(None, "--tls-target-ca", metavar="PEM",
                             help="Verify targets against these CAs instead of the system's."),
    tls_target_insecure: bool = opt(False, "--tls-target-insecure",
                                    help="Do not verify the targets' certificates."),
    splice: bool = typer.Option(True, "--splice/--no-splice", envvar="NETTOOLS_SPLICE",
                                help="Move plain TCP/unix bytes with zero-copy splice (Linux)."),
    json_log: bool = opt(False, "--json", help="Log each closed connection as a JSON line."),
    drain_timeout: Any = DRAIN_TIMEOUT,
    ready_file: str = opt(None, "--ready-file", help="Also write the ready lines to this file."),
) -> None:
    """Forward connections: each RULE relays a listening port to a target.

    Example: nettools forward 7000:22 8443:[::1]:443
    """
    with runtime_errors("forward"):
        specs = []
        for text in rules:
            try:
                specs.append(parse_rule(text))
            except ValueError as exc:
                _usage(str(exc))
        try:
            allow_nets, deny_nets = parse_networks(allow), parse_networks(deny)
        except ValueError as exc:
            _usage(str(exc))
        targets = [_resolve_target(spec) for spec in specs]
        listen_addrs = [_resolve_listen(spec) for spec in specs]
        tls_context = server_tls("forward", tls_cert, tls_key)
        target_tls = _target_tls(tls_target, tls_target_ca, tls_target_insecure, targets)

        reserve_fds(max_conns, FDS_PER_CONN)
        listeners = [listen_on(addr) for addr in listen_addrs]
        if json_log:
            _json_lines()
        stats = ForwardStats()
        forwarder = Forwarder(
            [Rule(sock, target) for sock, target in zip(listeners, targets, strict=True)],
            connect_timeout=connect_timeout, idle_timeout=idle_timeout, max_conns=max_conns,
            allow=allow_nets, deny=deny_nets, tls_context=tls_context,
            target_tls_context=target_tls, json_log=json_log, stats=stats, splice=splice,
        ).start()
        raise typer.Exit(run_service(
            "forward", stats, listeners, [forwarder.stop], drain_timeout=drain_timeout,
            ready_file=ready_file, ready_extras=[{"target": target.name} for target in targets],
        ))


def register(app: typer.Typer) -> None:
    app.command("forward")(forward)
