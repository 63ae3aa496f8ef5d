"""``nettools forward``: relay TCP and unix-socket connections to targets, rule by rule."""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from ..tools.forward import (
    FDS_PER_CONNECTION,
    RULE_SYNTAX,
    Forwarder,
    ForwardStats,
    log_json_lines,
    parse_networks,
    parse_rule,
    resolve_rules,
    target_tls_context,
)
from ..tools.plumbing.service import reserve_fds, run_service
from .common import (
    METRICS,
    drain_timeout_option,
    duration,
    opt,
    runtime_errors,
    server_tls,
    usage_error,
)

DRAIN_TIMEOUT = drain_timeout_option("for connections to end")


def _usage(message: str) -> NoReturn:
    usage_error("forward", message)


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
    metrics: Any = METRICS,
) -> None:
    """Forward connections: each RULE relays a listening port to a target.

    Example: nettools forward 7000:22 8443:[::1]:443
    """
    with runtime_errors("forward"):
        try:
            specs = [parse_rule(text) for text in rules]
            allow_nets, deny_nets = parse_networks(allow), parse_networks(deny)
            resolved = resolve_rules(specs)
        except ValueError as exc:
            _usage(str(exc))
        targets = [rule.target for rule in resolved]
        tls_context = server_tls("forward", tls_cert, tls_key)
        target_tls = None
        if not tls_target:
            if tls_target_ca is not None or tls_target_insecure:
                _usage("--tls-target-ca and --tls-target-insecure need --tls-target")
        else:
            try:
                target_tls = target_tls_context(targets, tls_target_ca,
                                                verify=not tls_target_insecure)
            except ValueError as exc:
                _usage(str(exc))

        reserve_fds(max_conns, FDS_PER_CONNECTION)
        forward_rules = [rule.open() for rule in resolved]
        if json_log:
            log_json_lines()
        stats = ForwardStats()
        forwarder = Forwarder(
            forward_rules,
            connect_timeout=connect_timeout, idle_timeout=idle_timeout, max_conns=max_conns,
            allow=allow_nets, deny=deny_nets, tls_context=tls_context,
            target_tls_context=target_tls, json_log=json_log, stats=stats, splice=splice,
        ).start()
        raise typer.Exit(run_service(
            "forward", stats, [rule.listener for rule in forward_rules], [forwarder.stop],
            drain_timeout=drain_timeout, ready_file=ready_file, metrics=metrics,
            ready_extras=[{"target": target.name} for target in targets],
        ))


def register(app: typer.Typer) -> None:
    app.command("forward")(forward)
