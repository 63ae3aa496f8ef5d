"""The settings a service takes in a ``nettools run`` file, and how each is read.

A service's settings are its command's long options without the dashes
(``max-conns``, ``idle-timeout``; ``max_conns`` is read the same), with the
command's defaults, written as TOML values: durations as ``"30s"`` (or a number
of seconds; ``"off"`` or 0 for none), sizes as ``"64K"`` (or a number of
bytes), addresses as ``"host:port"``, ``"[v6]:port"`` or ``"unix:/path"``,
ZeroMQ endpoints as ``"bind:URL"``/``"connect:URL"``, lists as TOML arrays.
Every service listens on ``127.0.0.1:0`` unless given ``listen``.  A relative
path is relative to the file's directory.

``Kind`` describes one type of service: its settings (``Setting``) and the
function that starts it.  Each reader raises ``ValueError`` with a one-line
reason; ``SettingError`` names the setting it is about, so that the file's
line can be shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..plumbing.service import parse_address
from ..plumbing.units import parse_duration, parse_size
from ..zmq import parse_endpoint

__all__ = [
    "SettingError",
    "Setting",
    "Kind",
    "Context",
    "DEFAULT_LISTEN",
    "TLS_SETTINGS",
    "FLOOD_SETTINGS",
    "SLOW_CLIENT_SETTINGS",
    "check_tls",
    "listen_setting",
    "drain_setting",
    "duration",
    "size",
    "integer",
    "number",
    "boolean",
    "text",
    "texts",
    "choice",
    "address",
    "endpoint",
    "path",
]

#: Where a service listens unless told: loopback, a port the system picks.
DEFAULT_LISTEN = "127.0.0.1:0"

Reader = Callable[[Any, "Context"], Any]


class SettingError(ValueError):
    """A setting (``key``, or the service as a whole when None) that is wrong."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Context:
    """What reading a setting may need: the directory of the file."""

    base: str = "."


@dataclass(frozen=True)
class Setting:
    """One setting: its reader and its default (written as in the file; None:
    unset)."""

    read: Reader
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Kind:
    """A type of service a file may declare.

    ``settings`` maps each setting's name to how it is read; ``start(name,
    values)`` starts a service from the values read (see ``running``);
    ``check(values)`` may raise ``SettingError`` for settings that do not go
    together; ``unsupported`` maps names refused on purpose to why;
    ``fds_per_connection``: open files one of its ``max-conns`` may hold.
    """

    name: str
    settings: Mapping[str, Setting]
    start: Callable[[str, dict[str, Any]], Any]
    check: Callable[[dict[str, Any]], None] | None = None
    unsupported: Mapping[str, str] = field(default_factory=dict)
    fds_per_connection: int = 1
    summary: str = ""


# ------------------------------------------------------------------ readers


def _expect(value: Any, kinds: tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) and bool not in kinds:
        raise ValueError(f"expected {what}, got {str(value).lower()}")
    if not isinstance(value, kinds):
        raise ValueError(f"expected {what}, got {_shown(value)}")


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r}"


def duration(value: Any, ctx: Context) -> float | None:
    """``"500ms"``, ``"30s"``, ``"5m"``, seconds as a number; ``"off"``/0: None."""
    _expect(value, (str, int, float), 'a duration such as "30s"')
    if isinstance(value, str):
        return parse_duration(value)
    if value < 0:
        raise ValueError(f"a duration cannot be negative: {value}")
    return float(value) or None


def size(value: Any, ctx: Context) -> int:
    """``"64K"``, ``"10M"`` or a number of bytes."""
    _expect(value, (str, int), 'a size such as "64K"')
    if isinstance(value, str):
        return parse_size(value)
    if value < 0:
        raise ValueError(f"a size cannot be negative: {value}")
    return value


def integer(low: int | None = None, high: int | None = None) -> Reader:
    """A whole number, at least ``low`` and at most ``high``."""

    def read(value: Any, ctx: Context) -> int:
        _expect(value, (int,), "a whole number")
        if low is not None and value < low:
            raise ValueError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high}, got {value}")
        return value

    return read


def number(low: float) -> Reader:
    """A number, at least ``low``."""

    def read(value: Any, ctx: Context) -> float:
        _expect(value, (int, float), "a number")
        if value < low:
            raise ValueError(f"must be at least {low:g}, got {value}")
        return float(value)

    return read


def boolean(value: Any, ctx: Context) -> bool:
    """``true`` or ``false``."""
    _expect(value, (bool,), "true or false")
    return value


def text(value: Any, ctx: Context) -> str:
    """A string."""
    _expect(value, (str,), "a string")
    return value


def texts(value: Any, ctx: Context) -> tuple[str, ...]:
    """An array of strings."""
    _expect(value, (list,), "an array of strings")
    for item in value:
        _expect(item, (str,), "an array of strings")
    return tuple(value)


def choice(*names: str) -> Reader:
    """One of ``names``."""

    def read(value: Any, ctx: Context) -> str:
        _expect(value, (str,), f"one of {', '.join(names)}")
        if value not in names:
            raise ValueError(f"expected one of {', '.join(names)}, got {value!r}")
        return value

    return read


def address(value: Any, ctx: Context) -> Any:
    """``host:port``, ``[v6]:port``, ``unix:/path`` (or a port) -> ``Address``."""
    _expect(value, (str, int), 'an address such as "127.0.0.1:8080"')
    return parse_address(str(value))


def endpoint(value: Any, ctx: Context) -> Any:
    """A ZeroMQ endpoint: ``bind:URL``, ``connect:URL`` or a URL (binds)."""
    _expect(value, (str,), 'a ZeroMQ endpoint such as "tcp://127.0.0.1:5555"')
    return parse_endpoint(value)


def path(value: Any, ctx: Context) -> str:
    """A file or directory, relative to the file's directory."""
    _expect(value, (str,), "a path")
    if not value:
        raise ValueError("empty path")
    return os.path.normpath(os.path.join(ctx.base, os.path.expanduser(value)))


def paths(value: Any, ctx: Context) -> tuple[str, ...]:
    """An array of paths, each relative to the file's directory."""
    return tuple(path(item, ctx) for item in texts(value, ctx))


def log_target(value: Any, ctx: Context) -> str | None:
    """Where a log goes: ``true`` (stderr, as ``"-"``), ``false`` (nowhere),
    ``"-"``, or a file relative to the file's directory."""
    if isinstance(value, bool):
        return "-" if value else None
    _expect(value, (str,), 'true, false, "-" or a file')
    return value if value == "-" else path(value, ctx)


#: A server's TLS: a certificate (chain) and its key, if not in the same file.
TLS_SETTINGS = {"tls-cert": Setting(path), "tls-key": Setting(path)}


def check_tls(v: dict[str, Any]) -> None:
    """A key needs its certificate."""
    if v["tls-key"] is not None and v["tls-cert"] is None:
        raise SettingError("tls-key", "tls-key needs tls-cert")


#: The slow-client policy of the servers that queue output per client (see
#: ``nettools.tools.plumbing.outbox``).
#: Each client's flood control (chat and wschat alike).
FLOOD_SETTINGS = {
    "rate": Setting(number(0.01), 5.0),
    "burst": Setting(integer(1), 10),
}

SLOW_CLIENT_SETTINGS = {
    "slow-timeout": Setting(duration, "5s"),
    "queue-size": Setting(integer(1), 256),
    "send-buffer": Setting(size, "64K"),
}


def listen_setting() -> Setting:
    """``listen``: where the service listens (loopback, a free port)."""
    return Setting(address, DEFAULT_LISTEN)


def drain_setting() -> Setting:
    """``drain-timeout``: on a stop, how long the service may finish its work."""
    return Setting(duration, "10s")
