"""Forwarding rules: their syntax, their targets, and who may use them.

A rule is ``[LISTEN_HOST:]LISTEN_PORT:[TARGET_HOST:]TARGET_PORT`` -- e.g.
``7000:22``, ``0.0.0.0:7000:db:5432``, ``[::1]:7000:[::1]:22``,
``unix:/run/a.sock:22``, ``7000:unix:/run/b.sock``, or ``systemd:ssh:22`` for
the socket systemd passed under the name ``ssh``.  Turning rule strings into
``Rule`` objects takes three steps, each with its own kind of failure:
``parse_rule`` (syntax: ``ValueError``), ``resolve_rules`` (names looked up
now, once: ``ValueError``) and ``ResolvedRule.open`` (the listening socket:
``ServiceError``); ``open_rules`` runs all three.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ...green import socket
from ...net import Address, format_address
from ..plumbing.service import listen_on, parse_address
from ..plumbing.systemd import SystemdAddress
from .errors import reason

__all__ = [
    "RULE_SYNTAX",
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
    "Network",
    "parse_networks",
    "admitted",
]

RULE_SYNTAX = "[LISTEN_HOST:]LISTEN_PORT:[TARGET_HOST:]TARGET_PORT"


# ------------------------------------------------------------------ syntax


@dataclass(frozen=True)
class RuleSpec:
    """A parsed rule: where to listen and where to connect, before any lookup."""

    text: str
    listen: Address
    target: Address


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


def parse_rule(text: str) -> RuleSpec:
    """``7000:22``, ``0.0.0.0:7000:db:5432``, ``[::1]:7000:[::1]:22``,
    ``unix:/run/a.sock:22``, ``7000:unix:/run/b.sock`` -> a ``RuleSpec``.

    Hosts default to 127.0.0.1; raises ``ValueError`` with a one-line reason.
    """
    text = text.strip()
    try:
        listen_text, target_text = split_rule(text)
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


def resolve_target(host: str, port: int) -> Target:
    """Resolve ``host`` now (green ``getaddrinfo``); raises ``socket.gaierror``.

    Every address is kept: ``localhost`` may resolve to ``::1`` first while the
    target only listens on ``127.0.0.1``, and each is tried in turn.
    """
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    addresses = tuple(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))
    return Target(format_address((host, port)), addresses, host)


def unix_target(path: str) -> Target:
    """A target that is a unix stream socket at ``path``."""
    return Target(f"unix:{path}", ((socket.AF_UNIX, path),), None)


@dataclass(frozen=True)
class ResolvedRule:
    """A rule whose names are looked up: the address to listen on, the target."""

    text: str
    listen: Address
    target: Target

    def open(self, backlog: int = 1024) -> Rule:
        """Listen; ``ServiceError`` saying why if that fails."""
        return Rule(listen_on(self.listen, backlog=backlog), self.target)


def resolve_rules(specs: Sequence[RuleSpec]) -> list[ResolvedRule]:
    """Look every rule's target up, then every listen host (green
    ``getaddrinfo``); ``ValueError`` naming the rule if a name does not resolve."""
    targets = [_target_of(spec) for spec in specs]
    listens = [_listen_address_of(spec) for spec in specs]
    return [
        ResolvedRule(spec.text, listen, target)
        for spec, listen, target in zip(specs, listens, targets, strict=True)
    ]


def _target_of(spec: RuleSpec) -> Target:
    addr = spec.target
    if addr.path is not None:
        return unix_target(addr.path)
    try:
        return resolve_target(addr.host, addr.port)
    except OSError as exc:
        raise _unresolved(addr.host, spec, exc) from None


def _listen_address_of(spec: RuleSpec) -> Address:
    addr = spec.listen
    if addr.path is not None or isinstance(addr, SystemdAddress):
        return addr
    if socket.is_numeric_host(addr.host):
        return addr
    try:
        infos = socket.getaddrinfo(
            addr.host, addr.port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except OSError as exc:
        raise _unresolved(addr.host, spec, exc) from None
    return Address(infos[0][4][0], addr.port)


def _unresolved(host: str | None, spec: RuleSpec, exc: OSError) -> ValueError:
    return ValueError(f"cannot resolve {host!r} in rule {spec.text!r}: {reason(exc)}")


# ------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Rule:
    """One forward: connections accepted on ``listener`` go to ``target``."""

    listener: socket.socket
    target: Target

    @property
    def listen_name(self) -> str:
        return format_address(self.listener.getsockname())

    @property
    def name(self) -> str:
        return f"{self.listen_name} -> {self.target.name}"


def open_rules(texts: Iterable[str], backlog: int = 1024) -> list[Rule]:
    """Rule strings -> listening ``Rule``s, ready for a ``Forwarder``.

    Raises ``ValueError`` for a rule that is malformed or names a host that
    does not resolve, ``ServiceError`` for one that cannot listen (closing the
    listeners already opened).
    """
    resolved = resolve_rules([parse_rule(text) for text in texts])
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
