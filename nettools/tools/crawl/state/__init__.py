"""Where a crawl's state lives when it must outlive a process: ``--state``.

* ``sqlite:FILE`` -- one machine: the crawl runs in this process as always,
  and every finished visit is journaled to FILE (``journal.py``); run the same
  command again after a crash and it goes on where it stopped.
* ``redis://[:PASSWORD@]HOST[:PORT][/DB][?prefix=NAME]`` or
  ``unix:///PATH/redis.sock[?db=DB&prefix=NAME]`` -- any number of processes
  on any machines: the frontier, the seen-set, per-host politeness, robots.txt,
  the leases of URLs in flight and the report's data live in Redis, under keys
  starting with NAME (default ``nettools:crawl``), one crawl per NAME
  (``shared.py``).

``parse_state`` reads the option; a malformed one is a ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["StateSpec", "parse_state", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "nettools:crawl"


@dataclass(frozen=True)
class StateSpec:
    """A parsed ``--state``: ``kind`` is "sqlite" (``path``) or "redis"."""

    kind: str
    text: str  # as given (without a password), for messages
    path: str = ""  # the SQLite file, or the Redis unix socket
    host: str = ""
    port: int = 6379
    db: int = 0
    password: str | None = None
    username: str | None = None
    prefix: str = DEFAULT_PREFIX


def parse_state(text: str) -> StateSpec:
    """``sqlite:FILE``, ``redis://...`` or ``unix:///...``; ValueError if malformed."""
    text = text.strip()
    if text.startswith("sqlite:"):
        path = text[len("sqlite:"):]
        if path.startswith("//"):  # sqlite:///abs/path, as SQLAlchemy spells it
            path = path[2:]
        if not path:
            raise ValueError(f"--state {text!r}: name the file, e.g. sqlite:crawl.db")
        return StateSpec("sqlite", text, path=path)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"--state {text!r}: {exc}") from None
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"db", "prefix"}
    if unknown:
        raise ValueError(f"--state {text!r}: unknown parameter {sorted(unknown)[0]!r} "
                         "(use db and prefix)")  # fmt: skip
    prefix = query.get("prefix", DEFAULT_PREFIX)
    if not prefix:
        raise ValueError(f"--state {text!r}: an empty prefix")
    shown = text.replace(f":{parts.password}@", ":***@") if parts.password else text
    secret = {"password": unquote(parts.password) if parts.password else None,
              "username": unquote(parts.username) if parts.username else None}  # fmt: skip
    if parts.scheme == "redis":
        if not parts.hostname:
            raise ValueError(f"--state {text!r}: no host (redis://HOST:PORT/DB)")
        db = _db(text, parts.path.strip("/") or query.get("db", "0"))
        return StateSpec("redis", shown, host=parts.hostname, port=port or 6379, db=db,
                         prefix=prefix, **secret)  # fmt: skip
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"--state {text!r}: no socket path (unix:///path/redis.sock)")
        return StateSpec("redis", shown, path=parts.path, db=_db(text, query.get("db", "0")),
                         prefix=prefix, **secret)  # fmt: skip
    if parts.scheme == "rediss":
        raise ValueError(f"--state {text!r}: TLS to Redis is not supported; reach it over a "
                         "trusted network or a tunnel")  # fmt: skip
    raise ValueError(f"--state {text!r}: use sqlite:FILE, redis://HOST:PORT/DB or "
                     "unix:///PATH/redis.sock")  # fmt: skip


def _db(text: str, value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"--state {text!r}: the database is a number, not {value!r}")
    return int(value)
