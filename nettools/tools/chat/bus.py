"""Chat servers sharing rooms over a ZeroMQ forwarder: the chat bus.

Every chat server (``nettools chat`` and ``nettools wschat`` alike) connects a
PUB socket to the forwarder's XSUB side and a SUB socket to its XPUB side
(``nettools zmq proxy --type forwarder``), publishes what happens to its own
users, and applies what the other servers publish: their messages, joins,
leaves and renames reach its local users, their messages go into its rooms'
history, and their users appear in its user lists.

Wire format (version 1)
-----------------------

A bus message is two frames: a topic and a JSON object (UTF-8, ASCII-escaped).
The topic is ``CHANNEL/ROOM`` (the room name casefolded) for what happens in a
room, and ``CHANNEL/`` for what concerns a whole server; ``CHANNEL`` is
``chat`` unless configured, so separate chat networks can share a forwarder,
and a room can be tapped with a SUB socket on the prefix ``chat/lobby``.
Every object has ``"v": 1``, ``"server"`` (the sender's id), ``"kind"`` and
``"ts"`` (Unix seconds at the sender); ``since`` is when a user claimed its
nickname.  Names are 1-32 letters, digits or ``_-.[]{}|^`'``.

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

Presence: each server keeps, per other server, the users it announced.  A
heartbeat's count and digest (XOR of CRC-32s of ``nick NUL room``) let a
receiver notice that it missed something (PUB/SUB drops messages when a queue
is full, or while a connection is being made) and ask that server for its
users.  A new server asks everyone when it starts.  A server that is not heard
from for ``expiry`` has vanished: its users leave ("server gone").

Connected or not: a server hears its own messages back through the forwarder
(and ignores them otherwise), so the first one to come back proves the whole
path; until then it asks again with growing pauses.  A bus that is down at
start or goes away later costs one warning in the log: the server keeps
serving its own users, ZeroMQ keeps reconnecting, and the server catches up
(both ways) when the bus is back.

Order: messages from one server reach every other server in the order it sent
them (one connection each way through the forwarder).  Between servers, each
server shows the order in which messages reached it; a server shows its own
users' messages at once, without waiting for them to come back.

Nicknames are unique across the servers a server knows of: a nickname in use
on any of them is refused.  Two servers can still accept the same nickname at
the same instant, before either has heard of the other's user (or while the
bus is cut).  When they do hear, the later claim (then the greater server id)
loses: its server renames that user (``nick_2``...) and tells the room.

Limits: a bus message over ``max_message`` bytes is neither sent nor accepted;
malformed messages (wrong frames, JSON, fields) are ignored and counted, with a
warning in the log at most every ``WARN_EVERY`` seconds.  Anyone who can
publish on the forwarder can speak for any user: run the bus on a trusted
network.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import zlib
from dataclasses import dataclass
from typing import Any, Protocol

from ...green import zmq
from ...green.zmq.endpoints import Endpoint, open_socket, parse_endpoint
from ...kernel.greenthread import GreenThread, kill, sleep, spawn
from .rooms import NAME_MAX, valid_name

__all__ = ["ChatBus", "BusStats", "BusListener", "parse_bus", "PROTOCOL_VERSION"]

log = logging.getLogger("nettools.chatbus")

PROTOCOL_VERSION = 1
#: Longest server id accepted from the bus.
ID_MAX = 64
#: Longest leave reason accepted from the bus.
REASON_MAX = 200
#: Seconds between two warnings about malformed bus messages.
WARN_EVERY = 10.0
#: First pause between two "anyone there?" messages while not connected.
FIRST_RETRY = 0.05
#: Bus messages handled before the receiver lets others run.
BATCH = 64
_KINDS = frozenset(("say", "join", "leave", "nick", "alive", "query", "presence", "bye"))


class BusListener(Protocol):
    """What a chat server does with the other servers' news (names are display names)."""

    def bus_said(self, room: str, nick: str, text: str, ts: float, action: bool) -> None: ...
    def bus_joined(self, room: str, nick: str, ts: float) -> None: ...
    def bus_left(self, room: str, nick: str, reason: str, to: str | None, ts: float) -> None: ...
    def bus_renamed(self, room: str, old: str, new: str, ts: float) -> None: ...
    def bus_rename_local(self, nick: str) -> None:
        """``nick``, a local user's, lost a race with another server: rename that user."""


@dataclass
class BusStats:
    """What a server's bus counts."""

    server: str = ""
    connected: bool = False
    sent: int = 0
    received: int = 0  # from other servers
    malformed: int = 0  # ignored: bad frames, JSON or fields, or over the size cap
    too_big: int = 0  # local messages not sent: over the size cap
    servers: int = 0  # other servers known now
    remote_users: int = 0


def parse_bus(text: str) -> tuple[Endpoint, Endpoint]:
    """``PUB_EP,SUB_EP`` -> the endpoints to publish into and to subscribe from.

    Each is a ZeroMQ URL that is connected to (``connect:`` may be written),
    or bound with ``bind:URL``.  Raises ``ValueError`` when malformed.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(
            f"invalid bus {text!r}: give the forwarder's two endpoints, publish side first, "
            "e.g. tcp://host:5555,tcp://host:5556"
        )
    eps = []
    for part in parts:
        ep = parse_endpoint(part)  # EndpointError is a ValueError
        eps.append(Endpoint(ep.url, bind=part.startswith("bind:")))
    return eps[0], eps[1]


class _Invalid(Exception):
    pass


def _name(msg: dict, key: str) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not valid_name(value):
        raise _Invalid(f"bad {key!r}")
    return value


def _number(msg: dict, key: str, default: float | None = None) -> float:
    value = msg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"bad {key!r}")
    return float(value)


def _entry_digest(nick: str, room_key: str) -> int:
    return zlib.crc32(f"{nick}\0{room_key}".encode("utf-8", "surrogatepass"))


class _Roster:
    """The users of one server: casefolded nick -> [nick, room name, since];
    with their count and an order-free digest kept up to date."""

    __slots__ = ("users", "digest")

    def __init__(self) -> None:
        self.users: dict[str, list] = {}
        self.digest = 0

    def add(self, nick: str, room: str, since: float) -> None:
        key = nick.casefold()
        self.discard(key)
        self.users[key] = [nick, room, since]
        self.digest ^= _entry_digest(nick, room.casefold())

    def discard(self, key: str) -> list | None:
        entry = self.users.pop(key, None)
        if entry is not None:
            self.digest ^= _entry_digest(entry[0], entry[1].casefold())
        return entry


class _Peer:
    """Another server, as this one knows it."""

    __slots__ = ("id", "roster", "seen", "queried", "snap", "snap_part", "snap_users")

    def __init__(self, server_id: str, now: float) -> None:
        self.id = server_id
        self.roster = _Roster()
        self.seen = now
        self.queried = -1e9
        self.snap: int | None = None  # the snapshot being received
        self.snap_part = 0
        self.snap_users: list = []


class ChatBus:
    """One chat server's connection to the bus.

    ``pub``/``sub``: the forwarder's publish (XSUB) and subscribe (XPUB)
    endpoints, as ``Endpoint`` or URL (connected to).  ``channel``: the topic
    prefix.  ``heartbeat``: how often this server tells the others it is
    alive; ``expiry``: how long another server may stay silent before its
    users are dropped (default three heartbeats).  ``max_message``: size cap
    of a bus message in bytes.  ``server_id``: this server's id (default:
    random).  A chat server calls ``attach`` with itself, then ``start``.
    """

    def __init__(
        self,
        pub: Endpoint | str,
        sub: Endpoint | str,
        *,
        channel: str = "chat",
        heartbeat: float = 5.0,
        expiry: float | None = None,
        max_message: int = 65536,
        hwm: int = 10_000,
        server_id: str | None = None,
    ) -> None:
        if heartbeat <= 0:
            raise ValueError("the bus heartbeat must be above 0")
        expiry = 3 * heartbeat if expiry is None else expiry
        if expiry <= heartbeat:
            raise ValueError("the bus expiry must be longer than its heartbeat")
        if max_message < 1024:
            raise ValueError("the bus message cap must be at least 1K")
        if not channel or "/" in channel:
            raise ValueError(f"invalid bus channel {channel!r}: a non-empty name without '/'")
        self.pub_ep = pub if isinstance(pub, Endpoint) else Endpoint(pub, bind=False)
        self.sub_ep = sub if isinstance(sub, Endpoint) else Endpoint(sub, bind=False)
        self.channel = channel
        self.heartbeat = heartbeat
        self.expiry = expiry
        self.max_message = max_message
        self.hwm = hwm
        self.id = server_id or secrets.token_hex(6)
        if len(self.id) > ID_MAX:
            raise ValueError(f"a bus server id is at most {ID_MAX} characters")
        self.stats = BusStats(server=self.id)
        self._prefix = (channel + "/").encode()
        self._listener: BusListener | None = None
        self._local = _Roster()
        self._peers: dict[str, _Peer] = {}
        # casefolded room -> {(server id, casefolded nick): nick}: who is where elsewhere.
        self._rooms: dict[str, dict[tuple[str, str], str]] = {}
        self._ctx: Any = None
        self._pub: Any = None
        self._sub: Any = None
        self._threads: list[GreenThread] = []
        self._snap_seq = 0
        self._snapshot_due = False
        self._last_echo = -1e9
        self._started = 0.0
        self._warned = False
        self._malformed_logged = -1e9
        self._malformed_unlogged = 0

    # ------------------------------------------------------------ life

    def attach(self, listener: BusListener) -> None:
        self._listener = listener

    def start(self) -> ChatBus:
        """Open the sockets and start publishing and receiving.

        Raises ``EndpointError`` (a ``ValueError``) for an endpoint that cannot
        be right and ``OSError`` for one that cannot be bound; an unreachable
        forwarder is no error (see the module's notes).
        """
        if self._listener is None:
            raise RuntimeError("attach a chat server to the bus before starting it")
        self._ctx = zmq.Context()
        try:
            self._pub, self.pub_url = open_socket(
                self._ctx, zmq.PUB, self.pub_ep, hwm=self.hwm, linger=1.0
            )
            self._sub, self.sub_url = open_socket(
                self._ctx, zmq.SUB, self.sub_ep, hwm=self.hwm, linger=0,
                # A hard stop far above the cap: libzmq drops the connection
                # rather than take in something huge (the socket reconnects).
                options={zmq.MAXMSGSIZE: 4 * self.max_message + 4096},
            )
            self._sub.setsockopt(zmq.SUBSCRIBE, self._prefix)
        except BaseException:
            self._ctx.destroy(0)
            raise
        self._started = time.monotonic()
        log.info("chat bus: server %s publishing to %s, subscribed to %s",
                 self.id, self.pub_url, self.sub_url)
        self._threads = [spawn(self._receive_loop), spawn(self._tick_loop)]
        return self

    def stop(self) -> None:
        """Tell the others this server's users are gone, then close the sockets."""
        for gt in self._threads:
            kill(gt)
        self._threads = []
        if self._ctx is None:
            return
        self._publish(b"", "bye")
        self._sub.close(0)
        self._pub.close()  # lingers up to a second so the bye gets out
        self._ctx.term()
        self._ctx = None

    @property
    def connected(self) -> bool:
        """Whether this server's own messages came back lately."""
        return time.monotonic() - self._last_echo <= self.expiry

    # ------------------------------------------------------------ what the chat asks

    def nick_taken(self, nick: str) -> bool:
        """Whether another server has a user called ``nick`` (casefolded)."""
        key = nick.casefold()
        return any(key in p.roster.users for p in self._peers.values())

    def free_nick(self, nick: str, taken_here: Any) -> str:
        """A nickname like ``nick`` that neither ``taken_here(name)`` nor any
        known server has."""
        for n in range(2, 1000):
            suffix = f"_{n}"
            candidate = nick[: NAME_MAX - len(suffix)] + suffix
            if not taken_here(candidate) and not self.nick_taken(candidate):
                return candidate
        return "user_" + secrets.token_hex(6)

    def nicks_in(self, room: str) -> list[str]:
        """The users other servers have in ``room``."""
        return list(self._rooms.get(room.casefold(), {}).values())

    def count_in(self, room: str) -> int:
        return len(self._rooms.get(room.casefold(), ()))

    # ------------------------------------------------------------ what the chat tells

    def said(self, room: str, nick: str, text: str, action: bool = False) -> None:
        self._publish(room, "say", room=room, nick=nick, text=text, action=action)

    def joined(self, room: str, nick: str, since: float) -> None:
        self._local.add(nick, room, since)
        self._publish(room, "join", room=room, nick=nick, since=since)

    def left(self, room: str, nick: str, reason: str = "", to: str | None = None) -> None:
        self._local.discard(nick.casefold())
        extra = {"to": to} if to else {}
        self._publish(room, "leave", room=room, nick=nick, reason=reason, **extra)

    def renamed(self, room: str, old: str, new: str, since: float) -> None:
        self._local.discard(old.casefold())
        self._local.add(new, room, since)
        self._publish(room, "nick", room=room, nick=old, new=new, since=since)

    # ------------------------------------------------------------ sending

    def _publish(self, topic_room: str | bytes, kind: str, /, **fields: Any) -> bool:
        """Send one message; ``topic_room``: its room, or ``b""`` for a server's own news."""
        if self._pub is None or self._pub.closed:
            return False
        obj = {"v": PROTOCOL_VERSION, "server": self.id, "kind": kind,
               "ts": round(time.time(), 3), **fields}
        data = json.dumps(obj, separators=(",", ":")).encode()
        if len(data) > self.max_message:
            self.stats.too_big += 1
            log.warning("chat bus: a %s message of %d bytes is over the cap (%d); not sent",
                        kind, len(data), self.max_message)
            return False
        if isinstance(topic_room, str):
            topic_room = topic_room.casefold().encode("utf-8", "surrogatepass")
        topic = self._prefix + topic_room
        try:
            # A PUB never waits: with nobody subscribed, or a full queue, it drops.
            self._pub.send_multipart([topic, data], zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            log.debug("chat bus: cannot publish: %s", exc)
            return False
        self.stats.sent += 1
        return True

    def _want_snapshot(self) -> None:
        """Publish this server's users soon, once for all requests that came together."""
        if not self._snapshot_due:
            self._snapshot_due = True
            self._threads.append(spawn(self._send_snapshot))

    def _send_snapshot(self) -> None:
        self._snapshot_due = False
        self._threads = [gt for gt in self._threads if not gt.dead]
        self._snap_seq += 1
        # Parts that fit the cap with room to spare for the fields around them.
        room_for = self.max_message - 512
        parts: list[list] = [[]]
        size = 0
        for entry in self._local.users.values():
            n = len(json.dumps(entry, separators=(",", ":"))) + 1
            if size + n > room_for and parts[-1]:
                parts.append([])
                size = 0
            parts[-1].append(entry)
            size += n
        # Without a wait in between, so no join or leave slips between the parts.
        for i, part in enumerate(parts):
            self._publish(b"", "presence", snap=self._snap_seq, part=i,
                          last=i == len(parts) - 1, users=part)

    def _tick_loop(self) -> None:
        """Heartbeats, expiry of silent servers, and asking around while unconnected."""
        pause = FIRST_RETRY
        was_connected = False
        while True:
            now = time.monotonic()
            connected = now - self._last_echo <= self.expiry
            if was_connected and not connected:
                log.warning("chat bus: lost (nothing came back for %gs); serving local users "
                            "only until it is back", self.expiry)
                self._warned = True
            elif not connected and not self._warned and now - self._started > self.expiry:
                log.warning("chat bus: cannot reach the forwarder (%s, %s) for %gs; serving "
                            "local users only until it answers", self.pub_url, self.sub_url,
                            self.expiry)
                self._warned = True
            was_connected = self.stats.connected = connected
            self._publish(b"", "alive", users=len(self._local.users),
                          digest=self._local.digest, query=not connected)
            self._expire(now)
            if connected:
                pause = FIRST_RETRY
                sleep(self.heartbeat)
            else:
                sleep(pause)
                pause = min(2 * pause, self.heartbeat)

    def _expire(self, now: float) -> None:
        for peer in list(self._peers.values()):
            if now - peer.seen > self.expiry:
                log.info("chat bus: server %s went silent; dropping its %d user(s)",
                         peer.id, len(peer.roster.users))
                self._drop_peer(peer, "server gone")

    # ------------------------------------------------------------ receiving

    def _receive_loop(self) -> None:
        recv = self._sub.recv_multipart
        n = 0
        while True:
            frames = recv()
            try:
                self._handle(frames)
            except _Invalid as exc:
                self._malformed(str(exc))
            except Exception:
                # A bug in handling one message must not cut the server off the bus.
                log.exception("chat bus: error handling a message")
            n += 1
            if n % BATCH == 0:
                sleep(0)  # let the clients' writers (and everyone else) run

    def _malformed(self, why: str) -> None:
        self.stats.malformed += 1
        self._malformed_unlogged += 1
        now = time.monotonic()
        if now - self._malformed_logged >= WARN_EVERY:
            log.warning("chat bus: ignored %d malformed message(s) (%d in all); latest: %s",
                        self._malformed_unlogged, self.stats.malformed, why)
            self._malformed_logged = now
            self._malformed_unlogged = 0

    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            raise _Invalid(f"{len(frames)} frames, not 2")
        topic, data = frames
        if not topic.startswith(self._prefix):
            raise _Invalid("topic outside the channel")
        if len(data) > self.max_message:
            raise _Invalid(f"{len(data)} bytes, over the cap of {self.max_message}")
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):
            raise _Invalid("not JSON") from None
        if not isinstance(msg, dict) or msg.get("v") != PROTOCOL_VERSION:
            raise _Invalid("not a version 1 object")
        server, kind = msg.get("server"), msg.get("kind")
        if not isinstance(server, str) or not 0 < len(server) <= ID_MAX:
            raise _Invalid("bad 'server'")
        if kind not in _KINDS:
            raise _Invalid(f"unknown kind {str(kind)[:40]!r}")
        ts = _number(msg, "ts", time.time())
        now = time.monotonic()
        if server == self.id:
            # Our own message made the round trip: the whole path works.
            if now - self._last_echo > self.expiry:
                log.info("chat bus: connected (server %s)", self.id)
                self._warned = False
            self._last_echo = now
            self.stats.connected = True
            return
        peer = self._peers.get(server)
        if peer is None:
            if kind == "bye":
                return
            peer = self._peers[server] = _Peer(server, now)
            self.stats.servers = len(self._peers)
            log.info("chat bus: server %s appeared", server)
        peer.seen = now
        self.stats.received += 1
        getattr(self, "_on_" + kind)(peer, msg, ts)

    def _on_say(self, peer: _Peer, msg: dict, ts: float) -> None:
        text, action = msg.get("text"), msg.get("action", False)
        if not isinstance(text, str) or not isinstance(action, bool):
            raise _Invalid("bad 'text' or 'action'")
        room, nick = _name(msg, "room"), _name(msg, "nick")
        self._listener.bus_said(room, nick, text, ts, action)

    def _on_join(self, peer: _Peer, msg: dict, ts: float) -> None:
        room, nick, since = _name(msg, "room"), _name(msg, "nick"), _number(msg, "since")
        self._set(peer, nick, room, since, ts)

    def _on_leave(self, peer: _Peer, msg: dict, ts: float) -> None:
        _name(msg, "room")  # checked, though the roster knows where the user was
        nick = _name(msg, "nick")
        reason, to = msg.get("reason", ""), msg.get("to")
        if not isinstance(reason, str) or len(reason) > REASON_MAX:
            raise _Invalid("bad 'reason'")
        if to is not None and not (isinstance(to, str) and valid_name(to)):
            raise _Invalid("bad 'to'")
        entry = peer.roster.users.get(nick.casefold())
        if entry is None:
            return
        if reason == "moved" and to:
            # The move in one step: no moment without the user in either room.
            self._set(peer, entry[0], to, entry[2], ts)
            return
        self._unset(peer, nick.casefold())
        self._listener.bus_left(entry[1], entry[0], reason, to, ts)

    def _on_nick(self, peer: _Peer, msg: dict, ts: float) -> None:
        room, old, new = _name(msg, "room"), _name(msg, "nick"), _name(msg, "new")
        since = _number(msg, "since")
        if self._unset(peer, old.casefold()) is None:
            self._set(peer, new, room, since, ts)  # we missed the old one: a join then
            return
        self._add(peer, new, room, since)
        self._listener.bus_renamed(room, old, new, ts)
        self._check_conflict(peer, new, since)

    def _on_alive(self, peer: _Peer, msg: dict, ts: float) -> None:
        users, digest, query = msg.get("users"), msg.get("digest"), msg.get("query", False)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (users, digest)):
            raise _Invalid("bad 'users' or 'digest'")
        if query is True:
            self._want_snapshot()
        roster = peer.roster
        if (users, digest) != (len(roster.users), roster.digest):
            # We missed something of theirs: ask, but not more than once a heartbeat.
            now = time.monotonic()
            if now - peer.queried >= self.heartbeat:
                peer.queried = now
                self._publish(b"", "query", to=peer.id)

    def _on_query(self, peer: _Peer, msg: dict, ts: float) -> None:
        if msg.get("to") == self.id:
            self._want_snapshot()

    def _on_presence(self, peer: _Peer, msg: dict, ts: float) -> None:
        snap, part, last, users = (msg.get(k) for k in ("snap", "part", "last", "users"))
        if not (isinstance(snap, int) and isinstance(part, int) and isinstance(last, bool)
                and isinstance(users, list)):
            raise _Invalid("bad presence fields")
        entries = []
        for item in users:
            if not (isinstance(item, list) and len(item) == 3):
                raise _Invalid("bad presence entry")
            nick, room, since = item
            if not (isinstance(nick, str) and valid_name(nick) and isinstance(room, str)
                    and valid_name(room) and isinstance(since, (int, float))
                    and not isinstance(since, bool)):
                raise _Invalid("bad presence entry")
            entries.append((nick, room, float(since)))
        if part == 0:
            peer.snap, peer.snap_part, peer.snap_users = snap, 0, []
        elif peer.snap != snap or part != peer.snap_part:
            peer.snap = None  # a part went missing: the next heartbeat asks again
            return
        peer.snap_users.extend(entries)
        peer.snap_part += 1
        if last:
            peer.snap = None
            self._replace(peer, peer.snap_users, ts)
            peer.snap_users = []

    def _on_bye(self, peer: _Peer, msg: dict, ts: float) -> None:
        log.info("chat bus: server %s stopped", peer.id)
        self._drop_peer(peer, "server stopped")

    # ------------------------------------------------------------ the others' users

    def _add(self, peer: _Peer, nick: str, room: str, since: float) -> None:
        self._unset(peer, nick.casefold())
        peer.roster.add(nick, room, since)
        self.stats.remote_users += 1
        self._rooms.setdefault(room.casefold(), {})[(peer.id, nick.casefold())] = nick

    def _unset(self, peer: _Peer, key: str) -> list | None:
        """Forget a user of ``peer``; its entry, or None if unknown."""
        entry = peer.roster.discard(key)
        if entry is not None:
            self.stats.remote_users -= 1
            room_key = entry[1].casefold()
            members = self._rooms.get(room_key)
            if members is not None:
                members.pop((peer.id, key), None)
                if not members:
                    del self._rooms[room_key]
        return entry

    def _set(self, peer: _Peer, nick: str, room: str, since: float, ts: float) -> None:
        """``peer`` has ``nick`` in ``room``: record it, tell the chat of a change."""
        old = self._unset(peer, nick.casefold())
        self._add(peer, nick, room, since)
        if old is not None and old[1].casefold() == room.casefold():
            return
        if old is not None:
            self._listener.bus_left(old[1], old[0], "moved", room, ts)
        self._listener.bus_joined(room, nick, ts)
        self._check_conflict(peer, nick, since)

    def _replace(self, peer: _Peer, entries: list, ts: float) -> None:
        """A full list of ``peer``'s users: apply the differences."""
        wanted = {nick.casefold(): (nick, room, since) for nick, room, since in entries}
        for key, entry in list(peer.roster.users.items()):
            if key not in wanted or wanted[key][0] != entry[0]:
                self._unset(peer, key)
                self._listener.bus_left(entry[1], entry[0], "", None, ts)
        for nick, room, since in wanted.values():
            self._set(peer, nick, room, since, ts)

    def _drop_peer(self, peer: _Peer, reason: str) -> None:
        del self._peers[peer.id]
        self.stats.servers = len(self._peers)
        for key, entry in list(peer.roster.users.items()):
            self._unset(peer, key)
            self._listener.bus_left(entry[1], entry[0], reason, None, time.time())

    def _check_conflict(self, peer: _Peer, nick: str, since: float) -> None:
        """Two servers let two users take one nickname: the later claim loses
        (then the greater server id), on both servers alike."""
        mine = self._local.users.get(nick.casefold())
        if mine is not None and (mine[2], self.id) > (since, peer.id):
            log.info("chat bus: nickname %s was also taken on server %s; renaming ours",
                     mine[0], peer.id)
            self._listener.bus_rename_local(mine[0])
