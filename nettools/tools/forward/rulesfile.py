"""Rules from a TOML file, and reloading it without dropping connections.

The file::

    # rules as on the command line ...
    rules = ["7000:22", "udp:5353:127.0.0.1:53"]

    # ... and as tables, with options and toxics of their own
    [[rule]]
    name = "db"                                  # default: the listen address
    listen = "127.0.0.1:7000"
    targets = ["127.0.0.1:5432", "127.0.0.1:5433"]   # or target = "..."
    udp = false
    balance = "first"                            # or "round-robin"
    fail_timeout = "10s"
    health_check = "2s"
    send_proxy = "v2"                            # PROXY protocol to the targets
    accept_proxy = false                         # PROXY protocol from clients
    udp_ttl = "5m"
    udp_max_sessions = 10000

    [[rule.toxics]]                              # Toxiproxy's JSON shape
    type = "latency"
    stream = "downstream"
    attributes = { latency = 100, jitter = 10 }

Options a rule leaves out come from the command line's.  ``load_rules``
reads it (``RulesFileError``, a ``ValueError``, names the file and the line or
the rule); ``RulesReloader`` applies a new version to a running
``Forwarder``: rules that are new start, rules that are gone stop accepting
and drain, rules whose listen address is the same keep their listener and
their connections (new targets, options and the file's toxics apply to new
connections and at once, respectively), and a bad file changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ...kernel.greenthread import spawn
from ...net import call_on_stop_signals, format_address
from ..plumbing.service import ServiceError, announce, emit_event
from ..plumbing.units import parse_duration
from .errors import ForwardError
from .forwarder import Forwarder
from .proxy import Proxy
from .rules import ResolvedRule, RuleOptions, RuleSpec, parse_rule, resolve_rules
from .targets import TargetPool
from .toxics import Toxic, toxic_from_json

__all__ = ["RulesFileError", "load_rules", "rules_from_config", "with_toxics", "RulesReloader",
           "announce_proxy", "report_reload"]

log = logging.getLogger("nettools.forward")

_DURATIONS = ("fail_timeout", "health_check", "udp_ttl")
_OPTIONS = {f.name for f in dataclasses.fields(RuleOptions)}
_RULE_KEYS = {"name", "listen", "target", "targets", "udp", "toxics"} | _OPTIONS


class RulesFileError(ValueError):
    """The rules file cannot be used; the message names the file and where."""


def load_rules(path: str, defaults: RuleOptions | None = None) -> list[RuleSpec]:
    """The rules of the TOML file at ``path``; ``RulesFileError`` saying where
    and why it is wrong (or that it cannot be read)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise RulesFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        config = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesFileError(f"{path}: {exc}") from None
    try:
        return rules_from_config(config, defaults)
    except ValueError as exc:
        raise RulesFileError(f"{path}: {exc}") from None


def rules_from_config(config: Mapping[str, Any],
                      defaults: RuleOptions | None = None) -> list[RuleSpec]:
    """Rules from a parsed configuration (``rules`` strings and ``rule`` tables,
    as in a rules file); ``ValueError`` naming the rule that is wrong."""
    defaults = defaults or RuleOptions()
    unknown = set(config) - {"rules", "rule"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} (use rules = [...] or [[rule]])")
    specs = []
    texts = config.get("rules", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("rules must be a list of rule strings")
    specs.extend(parse_rule(text, defaults) for text in texts)
    tables = config.get("rule", [])
    if not isinstance(tables, list):
        raise ValueError("rule must be an array of tables ([[rule]])")
    for i, table in enumerate(tables, 1):
        try:
            specs.append(_rule_from_table(table, defaults))
        except ValueError as exc:
            name = table.get("name") if isinstance(table, Mapping) else None
            raise ValueError(f"rule {i}{f' ({name})' if name else ''}: {exc}") from None
    seen: set[str] = set()
    for spec in specs:
        if spec.key in seen:
            raise ValueError(f"two rules are called {spec.key!r}")
        seen.add(spec.key)
    return specs


def _rule_from_table(table: Any, defaults: RuleOptions) -> RuleSpec:
    if not isinstance(table, Mapping):
        raise ValueError("a rule must be a table")
    unknown = set(table) - _RULE_KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    listen = table.get("listen")
    targets = table.get("targets", [table["target"]] if "target" in table else None)
    if not isinstance(listen, str | int) or not targets or not isinstance(targets, list):
        raise ValueError("a rule needs listen and target (or targets)")
    overrides = {}
    for key in _OPTIONS & set(table):
        value = table[key]
        if key in _DURATIONS and isinstance(value, str):
            value = parse_duration(value)
        overrides[key] = value
    try:
        options = dataclasses.replace(defaults, **overrides)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    toxics = table.get("toxics", [])
    if not isinstance(toxics, list):
        raise ValueError("toxics must be an array of tables ([[rule.toxics]])")
    try:
        parsed = [toxic_from_json(t, static=True) for t in toxics]
    except ForwardError as exc:
        raise ValueError(f"toxic: {exc}") from None
    name = table.get("name")
    udp = table.get("udp", False)
    text = (f"{name}=" if name else "") + ("udp:" if udp else "") + f"{listen}:" + ",".join(
        str(t) for t in targets)
    return parse_rule(text, options, parsed)


def with_toxics(specs: Sequence[RuleSpec],
                toxics: Sequence[tuple[str | None, Toxic]]) -> list[RuleSpec]:
    """``specs`` with the command line's toxics added: each to the rule it
    names, or to every TCP rule; ``ValueError`` for a rule that is not there."""
    out = []
    for spec in specs:
        mine = [t for rule, t in toxics if rule in (None, spec.key) and not spec.udp]
        out.append(dataclasses.replace(spec, toxics=spec.toxics + tuple(mine)) if mine else spec)
    keys = {spec.key for spec in specs}
    for rule, _ in toxics:
        if rule is not None and rule not in keys:
            raise ValueError(f"--toxic names rule {rule!r}, which is not there")
    return out


class RulesReloader:
    """Keeps ``forwarder``'s file rules in line with the file at ``path``.

    ``reload()`` reads the file and applies it; ``install()`` makes SIGHUP do
    that.  Rules gone from the file get ``drain_timeout`` seconds for their
    connections to end.  New listeners are announced with ``announce`` lines
    (on stdout and in ``ready_file``); ``on_reload`` hears what each reload
    changed.
    """

    def __init__(
        self,
        forwarder: Forwarder,
        path: str,
        defaults: RuleOptions,
        *,
        toxics: Sequence[tuple[str | None, Toxic]] = (),
        drain_timeout: float | None = 10.0,
        ready_file: str | None = None,
        announce_new: Callable[[Any], None] | None = None,
        on_reload: Callable[[dict[str, list[str]]], None] | None = None,
    ) -> None:
        self.fwd = forwarder
        self.path = path
        self.defaults = defaults
        self.toxics = list(toxics)
        self.drain_timeout = drain_timeout
        self.ready_file = ready_file
        self.announce_new = announce_new
        self.on_reload = on_reload
        #: The file's rules now in force: key -> what it was opened from.
        self.current: dict[str, ResolvedRule] = {}

    def load(self) -> list[ResolvedRule]:
        """The file's rules, looked up; ``ValueError``/``OSError`` if unusable."""
        return resolve_rules(with_toxics(load_rules(self.path, self.defaults), self.toxics))

    def adopt(self, resolved: Sequence[ResolvedRule]) -> None:
        """These rules (opened with the forwarder) are the file's now."""
        self.current = {rule.key: rule for rule in resolved}

    def install(self) -> RulesReloader:
        call_on_stop_signals(self.reload, (signal.SIGHUP,))
        return self

    def reload(self) -> dict[str, list[str]]:
        """Read the file again and apply it; returns the names of the rules
        added, removed, changed and failed (a bad file: nothing changes)."""
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": [],
                                         "failed": []}
        try:
            new = {rule.key: rule for rule in self.load()}
        except (ValueError, OSError) as exc:
            log.error("forward: reload of %s failed, rules unchanged: %s", self.path,
                      getattr(exc, "strerror", None) or exc)
            changes["failed"].append(self.path)
            if self.on_reload is not None:
                self.on_reload(changes)
            return changes
        old = self.current
        for key, rule in old.items():
            if key not in new or not _same_listener(rule, new[key]):
                proxy = self.fwd.proxies.pop(key, None)
                if proxy is not None:
                    spawn(proxy.stop, self.drain_timeout, "rule removed")
                changes["removed"].append(key)
        current = {}
        for key, rule in new.items():
            before = old.get(key)
            if before is not None and _same_listener(before, rule):
                current[key] = rule
                if rule != before:
                    self._update(key, rule)
                    changes["changed"].append(key)
                continue
            try:
                proxy = self.fwd.open(rule, start=True)
            except (ServiceError, ForwardError) as exc:
                log.error("forward: rule %s not started: %s", key, exc)
                changes["failed"].append(key)
                continue
            current[key] = rule
            changes["added"].append(key)
            if self.announce_new is not None:
                self.announce_new(proxy)
        self.current = current
        for key in changes["removed"]:
            if key in changes["added"]:
                changes["removed"].remove(key)
                changes["added"].remove(key)
                changes["changed"].append(key)
        log.info("forward: reloaded %s: %s", self.path,
                 ", ".join(f"{len(v)} {k}" for k, v in changes.items()))
        if self.on_reload is not None:
            self.on_reload(changes)
        return changes

    def _update(self, key: str, rule: ResolvedRule) -> None:
        """Same listener, new targets, options or toxics: live connections stay."""
        proxy = self.fwd.proxies.get(key)
        if proxy is None:
            return
        proxy.options = rule.options
        proxy.rule = dataclasses.replace(proxy.rule, options=rule.options, toxics=rule.toxics,
                                         targets=rule.targets, target=rule.targets[0])
        if [t.name for t in proxy.targets.targets] != [t.name for t in rule.targets] or (
                proxy.targets.balance, proxy.targets.fail_timeout,
                proxy.targets.health_check) != (rule.options.balance, rule.options.fail_timeout,
                                                rule.options.health_check):
            proxy.targets.stop()
            proxy.targets = TargetPool(rule.targets, rule.options.balance,
                                       rule.options.fail_timeout, rule.options.health_check, key)
            if proxy.enabled:
                proxy.targets.start()
        if isinstance(proxy, Proxy):
            keep = [t for t in proxy.toxics if not t.static]
            proxy.set_toxics(list(rule.toxics) + keep)


def _same_listener(a: ResolvedRule, b: ResolvedRule) -> bool:
    return (a.listen, a.udp) == (b.listen, b.udp)


def report_reload(service: str, ready_file: str | None) -> Callable[[dict], None]:
    """An ``on_reload`` that prints ``{"event": "reloaded", ...}`` for scripts."""
    return lambda changes: emit_event({"event": "reloaded", "service": service, **changes},
                                      ready_file)


def announce_proxy(service: str, ready_file: str | None) -> Callable[[Any], None]:
    """An ``announce_new`` that prints a proxy's ready line as at start."""

    def announce_one(proxy: Any) -> None:
        announce(service, format_address(proxy.address), ready_file, name=proxy.name,
                 target=proxy.upstream)

    return announce_one
