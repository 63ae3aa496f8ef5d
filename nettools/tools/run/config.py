"""Reading a ``nettools run`` file: TOML (the standard library's ``tomllib``),
one table per service::

    [services.site]
    type = "static"
    root = "public"

    [services.db]
    type = "forward"
    rules = ["0:127.0.0.1:5432"]

Each service has a name (its table's, made of letters, digits, ``-``, ``_`` and
``.``), a ``type`` (see ``kinds``) and that type's settings (see ``options``).
Whatever is wrong in a file is a ``ConfigError`` naming the file, the line and
the reason: ``tomllib`` gives the line of a syntax error; for a setting that is
unknown or has a bad value, the line is found by scanning the file for the key
in its table (``SourceLines``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .options import Context, Kind, SettingError

__all__ = ["ConfigError", "ServiceSpec", "RunConfig", "SourceLines", "load_config", "parse_config"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SYNTAX_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|' + r"'[^']*'"
_KEY = re.compile(rf"^\s*((?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*)\s*=")
_HEADER = re.compile(r"^\s*\[")


class ConfigError(ValueError):
    """A file that cannot be run: ``file``, ``line`` (None when unknown) and why."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ServiceSpec:
    """One service as the file declares it: its ``kind`` and the ``values`` of
    its settings, read (defaults filled in).  Two specs are the same service
    when their kind and values are equal (the line does not count)."""

    name: str
    kind: Kind
    values: dict[str, Any]
    line: int | None = None

    def same_as(self, other: ServiceSpec) -> bool:
        return self.kind.name == other.kind.name and self.values == other.values


@dataclass(frozen=True)
class RunConfig:
    """A file's services, in the order written."""

    file: str
    services: dict[str, ServiceSpec]


class SourceLines:
    """Where tables and keys are in a TOML text, to point at the line of a setting.

    A light scan, not a parser: table headers and ``key =`` lines, outside
    multi-line strings.  Keys and headers are read with ``tomllib`` itself, so
    quoted and dotted keys are understood.
    """

    def __init__(self, text: str) -> None:
        self.tables: dict[tuple[str, ...], int] = {}
        self.keys: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if in_string is not None:
                if line.count(in_string) % 2:
                    in_string = None
                continue
            if _HEADER.match(line):
                path = _header_path(line)
                if path is not None:
                    table = path
                    self.tables.setdefault(table, number)
                continue
            m = _KEY.match(line)
            if m is None:
                continue
            key = _key_path(m.group(1))
            if key is not None:
                self.keys.setdefault(table + key, number)
            rest = line[m.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2:
                    in_string = quote

    def find(self, *path: str) -> int | None:
        """The line of the key or table at ``path`` or, failing that, of the
        nearest one holding it (an inline table's key: the table's line)."""
        while path:
            line = self.keys.get(path) or self.tables.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return None


def _header_path(line: str) -> tuple[str, ...] | None:
    try:
        data: Any = tomllib.loads(line.strip())
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(data, (dict, list)) and data:
        if isinstance(data, list):
            data = data[-1]
            continue
        (key, data), = data.items()
        path.append(key)
    return tuple(path)


def _key_path(text: str) -> tuple[str, ...] | None:
    path = _header_path(f"{text} = 0")
    return path or None


def load_config(file: str, kinds: Mapping[str, Kind]) -> RunConfig:
    """Read and check the run file at ``file``; raises ``ConfigError``."""
    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(file, None, exc.strerror or str(exc)) from None
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise ConfigError(file, None, reason) from None
    base = os.path.dirname(os.path.abspath(file))
    return parse_config(source, kinds, file=file, base=base)


def parse_config(
    source: str, kinds: Mapping[str, Kind], *, file: str = "<string>", base: str = "."
) -> RunConfig:
    """Check a run file's text; relative paths in it are relative to ``base``.
    Raises ``ConfigError``."""
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _SYNTAX_AT.search(message)
        line = int(m.group(1)) if m else None
        message = message[: m.start()] if m else message
        raise ConfigError(file, line, f"invalid TOML: {message[:1].lower()}{message[1:]}") from None
    lines = SourceLines(source)

    def error(message: str, *path: str) -> ConfigError:
        return ConfigError(file, lines.find(*path) if path else None, message)

    for key in data:
        if key != "services":
            raise error(f"unknown top-level key {key!r} (a run file holds [services.NAME] "
                        "tables)", key)  # fmt: skip
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise error("no services: declare each in a [services.NAME] table with a type",
                    *(("services",) if "services" in data else ()))  # fmt: skip
    ctx = Context(base)
    specs: dict[str, ServiceSpec] = {}
    for name, table in services.items():
        where = ("services", name)
        if not _NAME.match(name):
            raise error(f"invalid service name {name!r} (letters, digits, '-', '_' and '.', "
                        "at most 64)", *where)  # fmt: skip
        if not isinstance(table, dict):
            raise error(f"services.{name} must be a table", *where)
        try:
            specs[name] = _read_service(name, table, kinds, ctx, lines.find(*where))
        except _Located as exc:
            raise error(f"service {name!r}: {exc}", *where, *exc.originals) from None
    return RunConfig(file, specs)


def _read_service(
    name: str, table: dict[str, Any], kinds: Mapping[str, Kind], ctx: Context, line: int | None
) -> ServiceSpec:
    kind_name = table.get("type")
    if kind_name is None:
        raise _Located(None, f"missing type (one of {', '.join(kinds)})")
    if not isinstance(kind_name, str) or kind_name not in kinds:
        raise _Located("type", f"unknown type {kind_name!r} (one of {', '.join(kinds)})")
    kind = kinds[kind_name]
    given: dict[str, tuple[str, Any]] = {}  # setting -> (key as written, value)
    for key, value in table.items():
        if key == "type":
            continue
        setting = key.replace("_", "-")
        if setting in given:
            raise _Located(key, f"{key!r} given twice (as {given[setting][0]!r} too)")
        if setting in kind.unsupported:
            raise _Located(key, f"{setting}: {kind.unsupported[setting]}")
        if setting not in kind.settings:
            raise _Located(key, f"unknown setting {key!r} for a {kind.name} service "
                           f"(settings: {', '.join(kind.settings)})")  # fmt: skip
        given[setting] = (key, value)
    values: dict[str, Any] = {}
    for setting, spec in kind.settings.items():
        if setting in given:
            key, value = given[setting]
        elif spec.required:
            raise _Located(None, f"missing setting {setting!r}")
        elif spec.default is None:
            values[setting] = None
            continue
        else:
            key, value = setting, spec.default
        try:
            values[setting] = spec.read(value, ctx)
        except ValueError as exc:
            raise _Located(key, f"{setting}: {exc}") from None
    if kind.check is not None:
        try:
            kind.check(values)
        except SettingError as exc:
            key = given[exc.key][0] if exc.key in given else None
            raise _Located(key, str(exc)) from None
    return ServiceSpec(name, kind, values, line)


class _Located(SettingError):
    """A ``SettingError`` with the key as the file writes it."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(key, message)
        self.originals = (key,) if key is not None else ()
