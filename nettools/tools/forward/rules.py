"""Forwarding rules: their syntax, their targets, and who may use them.

A rule is ``[NAME=][udp:][LISTEN_HOST:]LISTEN_PORT:TARGET[,TARGET...]`` with
each target ``[TARGET_HOST:]TARGET_PORT`` -- e.g. ``7000:22``,
``0.0.0.0:7000:db:5432``, ``[::1]:7000:[::1]:22``, ``unix:/run/a.sock:22``,
``7000:unix:/run/b.sock``, ``web=8080:10.0.0.1:80,10.0.0.2:80`` (two targets,
see ``targets``), ``udp:5353:127.0.0.1:53``, or ``systemd:ssh:22`` for the
socket systemd passed under the name ``ssh``.  ``NAME`` is how the Toxiproxy API
and a rules file know the rule (default: its listen address, ``udp:`` and all);
``RuleOptions`` says how it forwards and ``toxics`` what faults it starts with.
Turning rule strings into ``Rule`` objects takes three steps, each with its
own kind of failure:
``parse_rule`` (syntax: ``ValueError``), ``resolve_rules`` (names looked up
now, once: ``ValueError``) and ``ResolvedRule.open`` (the listening socket:
``ServiceError``); ``open_rules`` runs all three.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...green import socket
from ...net import Address, format_address
from ..plumbing.service import listen_on, parse_address
from ..plumbing.systemd import SystemdAddress
from .errors import reason
from .toxics import Toxic

__all__ = [
    "RULE_SYNTAX",
    "BALANCE",
    "PROXY_PROTOCOLS",
    "RuleOptions",
    "RuleSpec",
    "parse_rule",
    "split_rule",
    "Target",
    "resolve_target",
    "unix_target",
    "ResolvedRule",
    "resolve_rules",
    "Rule",
    "open_rules",
    "open_resolved",
    "listen_key",
    "Network",
    "parse_networks",
    "admitted",
]

RULE_SYNTAX = "[NAME=][udp:][LISTEN_HOST:]LISTEN_PORT:[TARGET_HOST:]TARGET_PORT[,TARGET...]"
#: How a rule with several targets picks one for each new connection.
BALANCE = ("round-robin", "first")
#: PROXY protocol versions a rule can send to its targets.
PROXY_PROTOCOLS = ("v1", "v2")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+=")


@dataclass(frozen=True)
class RuleOptions:
    """How one rule forwards.

    * ``balance``: ``round-robin`` over the living targets, or ``first``: the
      first living one in the order given, the others standing by;
    * ``fail_timeout``: a target that refuses (or times out) is skipped this
      many seconds (passive health); ``health_check``: seconds between active
      checks (a TCP connect to each target; None: none);
    * ``send_proxy``: ``v1``/``v2`` sends a PROXY protocol header to the
      target, so it sees the real client; ``accept_proxy``: read one from each
      client (a load balancer in front) and take the client it names;
    * ``udp_ttl``: seconds a UDP session lives without datagrams either way
      (None: until the forwarder stops);
      ``udp_max_sessions``: sessions at once on the rule (more are dropped).
    """

    balance: str = "round-robin"
    fail_timeout: float = 10.0
    health_check: float | None = None
    send_proxy: str | None = None
    accept_proxy: bool = False
    udp_ttl: float | None = 300.0
    udp_max_sessions: int = 10_000

    def __post_init__(self) -> None:
        if self.balance not in BALANCE:
            raise ValueError(f"invalid balance {self.balance!r} (use {' or '.join(BALANCE)})")
        if self.send_proxy not in (None, *PROXY_PROTOCOLS):
            raise ValueError(f"invalid PROXY protocol version {self.send_proxy!r} (use v1 or v2)")
        if self.udp_max_sessions < 1:
            raise ValueError("udp_max_sessions must be at least 1")


# ------------------------------------------------------------------ syntax


@dataclass(frozen=True)
class RuleSpec:
    """A parsed rule: where to listen and where to connect, before any lookup."""

    text: str
    listen: Address
    targets: tuple[Address, ...]
    udp: bool = False
    name: str | None = None
    options: RuleOptions = field(default_factory=RuleOptions)
    toxics: tuple[Toxic, ...] = ()

    @property
    def target(self) -> Address:
        """The first target."""
        return self.targets[0]

    @property
    def key(self) -> str:
        """How the rule is known: its name, or its listen address."""
        return self.name or listen_key(self.listen, self.udp)


def listen_key(listen: Address, udp: bool) -> str:
    """A rule's default name: ``127.0.0.1:7000``, ``udp:127.0.0.1:53``."""
    return f"udp:{listen}" if udp else str(listen)


def split_rule(text: str) -> tuple[str, str]:
    """Cut a rule into its listen and target addresses.

    The listen side ends at the colon after its port (or after ``unix:PATH``,
    whose path therefore cannot hold a colon); the target takes the rest.
    """
    if text.startswith(("unix:", "systemd:")):
        cut = text.find(":", text.index(":") + 1)
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


def parse_rule(text: str, options: RuleOptions | None = None,
               toxics: Sequence[Toxic] = ()) -> RuleSpec:
    """``7000:22``, ``0.0.0.0:7000:db:5432``, ``[::1]:7000:[::1]:22``,
    ``unix:/run/a.sock:22``, ``web=7000:unix:/run/b.sock``,
    ``8080:10.0.0.1:80,10.0.0.2:80``, ``udp:5353:53`` -> a ``RuleSpec``.

    Hosts default to 127.0.0.1; raises ``ValueError`` with a one-line reason.
    """
    text = text.strip()
    rest = text
    name = None
    if _NAME.match(rest):
        name, _, rest = rest.partition("=")
    udp = rest.startswith("udp:")
    if udp:
        rest = rest[4:]
    try:
        listen_text, targets_text = split_rule(rest)
        if not listen_text or listen_text.startswith(":"):
            raise ValueError("empty listen host (IPv6 addresses go in brackets)")
        listen = parse_address(listen_text)
        targets = tuple(_parse_target(t) for t in targets_text.split(","))
        if udp and (listen.path is not None or any(t.path is not None for t in targets)):
            raise ValueError("a UDP rule takes host:port addresses, not unix sockets")
    except ValueError as exc:
        raise ValueError(f"invalid rule {text!r}: {exc} (use {RULE_SYNTAX})") from None
    return RuleSpec(text, listen, targets, udp, name, options or RuleOptions(), tuple(toxics))


def _parse_target(text: str) -> Address:
    text = text.strip()
    if not text:
        raise ValueError("empty target")
    if text.count(":") > 1 and not text.startswith(("[", "unix:")):
        raise ValueError("too many colons in the target (IPv6 addresses go in brackets)")
    target = parse_address(text)
    if target.path is None and target.port == 0:
        raise ValueError("the target port cannot be 0")
    return target


# ------------------------------------------------------------------ names


@dataclass(frozen=True)
class Target:
    """Where a rule's connections go: socket addresses to try in order.

    ``host`` is the name TLS verifies (None for a unix socket); ``name`` is
    how logs show the target.
    """

    name: str
    addresses: tuple[tuple[int, Any], ...]
    host: str | None = None


def resolve_target(host: str, port: int, udp: bool = False) -> Target:
    """Resolve ``host`` now (green ``getaddrinfo``); raises ``socket.gaierror``.

    Every address is kept: ``localhost`` may resolve to ``::1`` first while the
    target only listens on ``127.0.0.1``, and each is tried in turn.
    """
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    infos = socket.getaddrinfo(host, port, 0, kind)
    addresses = tuple(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))
    return Target(format_address((host, port)), addresses, host)


def unix_target(path: str) -> Target:
    """A target that is a unix stream socket at ``path``."""
    return Target(f"unix:{path}", ((socket.AF_UNIX, path),), None)


@dataclass(frozen=True)
class ResolvedRule:
    """A rule whose names are looked up: the address to listen on, the targets."""

    text: str
    listen: Address
    targets: tuple[Target, ...]
    udp: bool = False
    name: str | None = None
    options: RuleOptions = field(default_factory=RuleOptions)
    toxics: tuple[Toxic, ...] = ()

    @property
    def target(self) -> Target:
        """The first target."""
        return self.targets[0]

    @property
    def key(self) -> str:
        """How the rule is known: its name, or its listen address."""
        return self.name or listen_key(self.listen, self.udp)

    def open(self, backlog: int = 1024) -> Rule:
        """Listen; ``ServiceError`` saying why if that fails."""
        listener = listen_on(self.listen, udp=self.udp, backlog=backlog)
        return Rule(listener, self.targets[0], self.targets, self.name, self.udp,
                    self.options, self.toxics, self)


def resolve_rules(specs: Sequence[RuleSpec]) -> list[ResolvedRule]:
    """Look every rule's targets up, then every listen host (green
    ``getaddrinfo``); ``ValueError`` naming the rule if a name does not resolve."""
    targets = [tuple(_target_of(spec, addr) for addr in spec.targets) for spec in specs]
    listens = [_listen_address_of(spec) for spec in specs]
    return [
        ResolvedRule(spec.text, listen, target, spec.udp, spec.name, spec.options, spec.toxics)
        for spec, listen, target in zip(specs, listens, targets, strict=True)
    ]


def _target_of(spec: RuleSpec, addr: Address) -> Target:
    if addr.path is not None:
        return unix_target(addr.path)
    try:
        return resolve_target(addr.host, addr.port, udp=spec.udp)
    except OSError as exc:
        raise _unresolved(addr.host, spec, exc) from None


def _listen_address_of(spec: RuleSpec) -> Address:
    addr = spec.listen
    if addr.path is not None or isinstance(addr, SystemdAddress):
        return addr
    if socket.is_numeric_host(addr.host):
        return addr
    kind = socket.SOCK_DGRAM if spec.udp else socket.SOCK_STREAM
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, 0, kind, 0, socket.AI_PASSIVE)
    except OSError as exc:
        raise _unresolved(addr.host, spec, exc) from None
    return Address(infos[0][4][0], addr.port)


def _unresolved(host: str | None, spec: RuleSpec, exc: OSError) -> ValueError:
    return ValueError(f"cannot resolve {host!r} in rule {spec.text!r}: {reason(exc)}")


# ------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Rule:
    """One forward: connections (or datagrams) on ``listener`` go to ``targets``.

    ``name`` is the rule's name (None: the Forwarder names it after its
    listen address); ``resolved`` is what it was opened from, if anything
    (a reload compares it with the file's new version).
    """

    listener: socket.socket
    target: Target
    targets: tuple[Target, ...] = ()
    name: str | None = None
    udp: bool = False
    options: RuleOptions = field(default_factory=RuleOptions)
    toxics: tuple[Toxic, ...] = ()
    resolved: ResolvedRule | None = None

    def __post_init__(self) -> None:
        if not self.targets:
            object.__setattr__(self, "targets", (self.target,))

    @property
    def listen_name(self) -> str:
        name = format_address(self.listener.getsockname())
        return f"udp:{name}" if self.udp else name

    @property
    def route(self) -> str:
        """``LISTEN -> TARGET[,TARGET...]``, as logs show the rule."""
        return f"{self.listen_name} -> {','.join(t.name for t in self.targets)}"


def open_rules(texts: Iterable[str], backlog: int = 1024,
               options: RuleOptions | None = None) -> list[Rule]:
    """Rule strings -> listening ``Rule``s, ready for a ``Forwarder``.

    Raises ``ValueError`` for a rule that is malformed or names a host that
    does not resolve, ``ServiceError`` for one that cannot listen (closing the
    listeners already opened).
    """
    resolved = resolve_rules([parse_rule(text, options) for text in texts])
    return open_resolved(resolved, backlog)


def open_resolved(resolved: Sequence[ResolvedRule], backlog: int = 1024) -> list[Rule]:
    """Listen for every rule, or for none (``ServiceError`` saying why)."""
    rules: list[Rule] = []
    try:
        for rule in resolved:
            rules.append(rule.open(backlog))
    except BaseException:
        for rule in rules:
            rule.listener.close()
        raise
    return rules


# ------------------------------------------------------------------ access

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str]) -> list[Network]:
    """``["10.0.0.0/8", "::1"]`` -> networks; raises ``ValueError`` on a bad one."""
    nets = []
    for text in texts:
        try:
            nets.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"invalid network {text!r} (use e.g. 10.0.0.0/8 or ::1)") from None
    return nets


def admitted(addr: Any, family: int, allow: Sequence[Network], deny: Sequence[Network]) -> bool:
    """Whether a client at ``addr`` may connect: not in a ``deny`` network, and
    in an ``allow`` one when any are given.  Unix-socket clients always may."""
    if not (allow or deny) or family not in (socket.AF_INET, socket.AF_INET6):
        return True
    ip = ipaddress.ip_address(addr[0].split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d
    if any(ip in net for net in deny):
        return False
    return not allow or any(ip in net for net in allow)
