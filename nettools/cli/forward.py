"""``nettools forward``: relay TCP, unix-socket and UDP traffic to targets, rule by rule,
with faults on demand (Toxiproxy's API and toxics) and rules reloaded from a file."""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from ..tools.forward import (
    BALANCE,
    DEFAULT_API_ADDRESS,
    FDS_PER_CONNECTION,
    PROXY_PROTOCOLS,
    RULE_SYNTAX,
    TOXIC_OPTION_SYNTAX,
    ApiServer,
    Forwarder,
    ForwardStats,
    RuleOptions,
    RulesReloader,
    announce_proxy,
    load_rules,
    log_json_lines,
    open_resolved,
    parse_networks,
    parse_rule,
    parse_toxic_option,
    report_reload,
    resolve_rules,
    target_tls_context,
    with_toxics,
)
from ..tools.plumbing.service import reserve_fds, run_service
from .common import (
    METRICS,
    address,
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
        None, metavar="RULE", envvar="NETTOOLS_RULES", show_default=False,
        help=f"{RULE_SYNTAX}; hosts default to 127.0.0.1, listen port 0 picks one. "
             "IPv6 as [ADDR]:PORT, unix sockets as unix:/PATH on either side; several "
             "targets comma-separated; udp: for UDP; NAME= names the rule.",
    ),
    rules_file: str = typer.Option(
        None, "--rules", metavar="FILE", envvar="NETTOOLS_RULES_FILE",
        help="Also take rules from this TOML file; SIGHUP reloads it "
             "(new rules start, removed ones drain, the rest stay)."),
    api: Any = opt(None, "--api", parser=address,
                   help=f"Serve Toxiproxy's HTTP API here (e.g. {DEFAULT_API_ADDRESS}): its "
                        "clients add proxies and toxics at run time."),
    toxic: list[str] = opt([], "--toxic", metavar="TOXIC",
                           help=f"A toxic from the start: {TOXIC_OPTION_SYNTAX}; every TCP "
                                "rule, or rule=NAME's (repeatable)."),
    balance: str = opt("round-robin", "--balance", metavar="|".join(BALANCE),
                       help="With several targets: round-robin, or first (failover only)."),
    fail_timeout: Any = opt("10s", "--fail-timeout", parser=duration,
                            help="Skip a target that refused or timed out for this long."),
    health_check: Any = opt("off", "--health-check", parser=duration,
                            help="Also check every target with a TCP connect this often."),
    proxy_protocol: str = opt(None, "--proxy-protocol", metavar="|".join(PROXY_PROTOCOLS),
                              help="Send a PROXY protocol header to the targets."),
    accept_proxy_protocol: bool = opt(False, "--accept-proxy-protocol",
                                      help="Read a PROXY protocol header (v1 or v2) from each "
                                           "client: a load balancer in front."),
    udp_ttl: Any = opt("5m", "--udp-ttl", parser=duration,
                       help="End a UDP session after this long without datagrams "
                            "(off: never)."),
    udp_max_sessions: int = opt(10_000, "--udp-max-sessions", min=1,
                                help="Most UDP sessions at once per rule (more are dropped)."),
    connect_timeout: Any = opt("10s", "--connect-timeout", parser=duration,
                               help="Give up connecting to a target (and each TLS "
                                    "handshake, or a PROXY header) after this long."),
    idle_timeout: Any = opt("off", "--idle-timeout", parser=duration,
                            help="Close a connection with no bytes either way this long "
                                 "(off: never, as socat and ssh -L)."),
    keepalive: Any = opt("60s", "--keepalive", parser=duration,
                         help="TCP keepalive on both legs: first probe after this much "
                              "silence, so dead peers are found (off: none)."),
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
    """Forward connections: each RULE relays a listening port to its targets.

    Example: nettools forward 7000:22 8443:[::1]:443

    \b
    Faults:    nettools forward db=7000:5432 --api 8474 --toxic latency:latency=100
    Failover:  nettools forward 8080:127.0.0.1:8001,127.0.0.1:8002 --balance first
    UDP:       nettools forward udp:5353:127.0.0.1:53
    Reload:    nettools forward --rules rules.toml   (then kill -HUP)
    """
    rules = rules or []
    with runtime_errors("forward"):
        try:
            options = RuleOptions(
                balance=balance, fail_timeout=fail_timeout or 0.0, health_check=health_check,
                send_proxy=proxy_protocol, accept_proxy=accept_proxy_protocol,
                udp_ttl=udp_ttl, udp_max_sessions=udp_max_sessions,
            )
            toxics = [parse_toxic_option(text) for text in toxic]
            specs = [parse_rule(text, options) for text in rules]
            file_specs = load_rules(rules_file, options) if rules_file else []
            if not (specs or file_specs or api is not None):
                _usage("give at least one RULE, --rules FILE or --api ADDR")
            specs = with_toxics(specs + file_specs, toxics)
            allow_nets, deny_nets = parse_networks(allow), parse_networks(deny)
            resolved = resolve_rules(specs)
        except ValueError as exc:
            _usage(str(exc))
        if any(rule.udp for rule in resolved) and (tls_cert or tls_target):
            _usage("TLS options apply to TCP rules; give UDP rules in a forwarder of their own")
        targets = [t for rule in resolved if not rule.udp for t in rule.targets]
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
        command_line, from_file = resolved[: len(rules)], resolved[len(rules):]
        if json_log:
            log_json_lines()
        stats = ForwardStats()
        forwarder = Forwarder(
            open_resolved(command_line),
            connect_timeout=connect_timeout, idle_timeout=idle_timeout, keepalive=keepalive,
            max_conns=max_conns, allow=allow_nets, deny=deny_nets, tls_context=tls_context,
            target_tls_context=target_tls, json_log=json_log, stats=stats, splice=splice,
            options=options,
        )
        for rule in from_file:
            forwarder.open(rule)
        forwarder.start()
        listeners: list[Any] = [p.listener for p in forwarder.proxies.values()]
        extras: list[dict] = [{"name": p.name, "target": p.upstream}
                              for p in forwarder.proxies.values()]
        stoppers: list[Any] = [forwarder.stop]
        if api is not None:
            api_server = ApiServer(forwarder, api).start()
            listeners.append(api_server.socket)
            extras.append({"api": "toxiproxy"})
            stoppers.append(api_server.stop)
        if rules_file:
            reloader = RulesReloader(
                forwarder, rules_file, options, toxics=toxics, drain_timeout=drain_timeout,
                announce_new=announce_proxy("forward", ready_file),
                on_reload=report_reload("forward", ready_file),
            )
            reloader.adopt(from_file)
            reloader.install()
        raise typer.Exit(run_service(
            "forward", stats, listeners, stoppers,
            drain_timeout=drain_timeout, ready_file=ready_file, ready_extras=extras,
            metrics=metrics, metrics_servers=forwarder.servers,  # not the API's
        ))


def register(app: typer.Typer) -> None:
    app.command("forward")(forward)
