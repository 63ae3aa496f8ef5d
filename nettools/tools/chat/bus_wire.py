"""The chat bus's wire format (version 1): making and checking bus messages.

A bus message is two frames: a topic and a JSON object (UTF-8, ASCII-escaped).
The topic is ``CHANNEL/ROOM`` (the room name casefolded) for what happens in a
room, and ``CHANNEL/`` for what concerns a whole server; ``CHANNEL`` is
``chat`` unless configured, so separate chat networks can share a forwarder,
and a room can be tapped with a SUB socket on the prefix ``chat/lobby``.
Every object has ``"v": 1``, ``"server"`` (the sender's id), ``"kind"`` and
``"ts"`` (Unix seconds at the sender); ``since`` is when a user claimed its
nickname.  Names follow ``names.valid_name`` (1-32 letters, digits or
``_-.[]{}|^`'``, one script, NFKC).

``say``       ``room``, ``nick``, ``text``, ``action`` (true for ``/me``)
``join``      ``room``, ``nick``, ``since``
``leave``     ``room``, ``nick``, ``reason`` (``""``, ``"moved"`` with ``"to":
              ROOM``, ``"idle"``, ``"too slow"``, ``"quit: ..."``...)
``nick``      ``room``, ``nick``, ``new``, ``since``: a rename
``alive``     ``users`` (count) and ``digest`` of the sender's users, ``query``
              (true: "everyone, send me your users"); every ``heartbeat``
``query``     ``to``: that server should publish its users
``presence``  ``snap``, ``part``, ``last``, ``users``: ``[[nick, room, since]...]``,
              all of the sender's users, in parts that fit the size cap
``bye``       the sender is stopping: its users are gone

Reading a message checks every field it uses: anything else raises
``BadMessage``, which the bus counts and otherwise ignores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .names import valid_name

__all__ = [
    "PROTOCOL_VERSION",
    "ID_MAX",
    "REASON_MAX",
    "KINDS",
    "BadMessage",
    "Message",
    "topic",
    "encode",
    "decode",
    "name_field",
    "number_field",
    "say_fields",
    "leave_fields",
    "alive_fields",
    "presence_fields",
    "presence_parts",
]

PROTOCOL_VERSION = 1
#: Longest server id accepted from the bus.
ID_MAX = 64
#: Longest leave reason accepted from the bus.
REASON_MAX = 200
#: Every kind of message a version 1 server sends.
KINDS = frozenset(("say", "join", "leave", "nick", "alive", "query", "presence", "bye"))


class BadMessage(Exception):
    """A bus message that breaks the wire format; the text says how."""


@dataclass(frozen=True)
class Message:
    """A bus message whose envelope (version, sender, kind, time) is checked."""

    server: str
    kind: str
    ts: float
    body: dict[str, Any]


def topic(prefix: bytes, room: str | bytes) -> bytes:
    """The topic of a message about ``room`` (``b""``: about a whole server)."""
    if isinstance(room, str):
        room = room.casefold().encode("utf-8", "surrogatepass")
    return prefix + room


def encode(server: str, kind: str, fields: dict[str, Any]) -> bytes:
    """The JSON frame of a ``kind`` message from ``server``, stamped with the time now."""
    obj = {"v": PROTOCOL_VERSION, "server": server, "kind": kind,
           "ts": round(time.time(), 3), **fields}
    return json.dumps(obj, separators=(",", ":")).encode()


def decode(frames: list[bytes], prefix: bytes) -> Message:
    """Check a received message's frames, topic and envelope (its size is the
    receiver's to check, before it gets here)."""
    if len(frames) != 2:
        raise BadMessage(f"{len(frames)} frames, not 2")
    head, data = frames
    if not head.startswith(prefix):
        raise BadMessage("topic outside the channel")
    try:
        msg = json.loads(data)
    except (ValueError, RecursionError):
        raise BadMessage("not JSON") from None
    if not isinstance(msg, dict) or msg.get("v") != PROTOCOL_VERSION:
        raise BadMessage("not a version 1 object")
    server, kind = msg.get("server"), msg.get("kind")
    if not isinstance(server, str) or not 0 < len(server) <= ID_MAX:
        raise BadMessage("bad 'server'")
    if kind not in KINDS:
        raise BadMessage(f"unknown kind {str(kind)[:40]!r}")
    return Message(server, kind, number_field(msg, "ts", time.time()), msg)


def name_field(msg: dict, key: str) -> str:
    """A nickname or room name field."""
    value = msg.get(key)
    if not isinstance(value, str) or not valid_name(value):
        raise BadMessage(f"bad {key!r}")
    return value


def number_field(msg: dict, key: str, default: float | None = None) -> float:
    """A number field (``default`` when missing; a bool is no number)."""
    value = msg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadMessage(f"bad {key!r}")
    return float(value)


def say_fields(msg: dict) -> tuple[str, str, str, bool]:
    """``say``: room, nick, text, action."""
    text, action = msg.get("text"), msg.get("action", False)
    if not isinstance(text, str) or not isinstance(action, bool):
        raise BadMessage("bad 'text' or 'action'")
    return name_field(msg, "room"), name_field(msg, "nick"), text, action


def leave_fields(msg: dict) -> tuple[str, str, str | None]:
    """``leave``: nick, reason, and the room moved to (or None)."""
    name_field(msg, "room")  # checked, though the receiver knows where the user was
    nick = name_field(msg, "nick")
    reason, to = msg.get("reason", ""), msg.get("to")
    if not isinstance(reason, str) or len(reason) > REASON_MAX:
        raise BadMessage("bad 'reason'")
    if to is not None and not (isinstance(to, str) and valid_name(to)):
        raise BadMessage("bad 'to'")
    return nick, reason, to


def alive_fields(msg: dict) -> tuple[int, int, bool]:
    """``alive``: user count, digest, and whether the sender asks for everyone's users."""
    users, digest, query = msg.get("users"), msg.get("digest"), msg.get("query", False)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (users, digest)):
        raise BadMessage("bad 'users' or 'digest'")
    return users, digest, query is True


def presence_fields(msg: dict) -> tuple[int, int, bool, list[tuple[str, str, float]]]:
    """``presence``: snapshot number, part number, whether it is the last part,
    and its ``(nick, room, since)`` entries."""
    snap, part, last, users = (msg.get(k) for k in ("snap", "part", "last", "users"))
    if not (isinstance(snap, int) and isinstance(part, int) and isinstance(last, bool)
            and isinstance(users, list)):
        raise BadMessage("bad presence fields")
    entries = []
    for item in users:
        if not (isinstance(item, list) and len(item) == 3):
            raise BadMessage("bad presence entry")
        nick, room, since = item
        if not (isinstance(nick, str) and valid_name(nick) and isinstance(room, str)
                and valid_name(room) and isinstance(since, (int, float))
                and not isinstance(since, bool)):
            raise BadMessage("bad presence entry")
        entries.append((nick, room, float(since)))
    return snap, part, last, entries


def presence_parts(entries: Iterable[list], max_message: int) -> list[list]:
    """``[nick, room, since]`` entries cut into the ``users`` lists of
    ``presence`` messages that each fit ``max_message`` bytes."""
    room_for = max_message - 512  # for the fields around the list
    parts: list[list] = [[]]
    size = 0
    for entry in entries:
        n = len(json.dumps(entry, separators=(",", ":"))) + 1
        if size + n > room_for and parts[-1]:
            parts.append([])
            size = 0
        parts[-1].append(entry)
        size += n
    return parts
