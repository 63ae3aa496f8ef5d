"""Presence on the chat bus: which users the other servers have, and where.

Each server keeps, per other server, the users it announced.  A heartbeat's
count and digest (XOR of CRC-32s of ``nick NUL room``) let a receiver notice
that it missed something (PUB/SUB drops messages when a queue is full, or while
a connection is being made) and ask that server for its users.  A new server
asks everyone when it starts.  A server that is not heard from for ``expiry``
has vanished: its users leave ("server gone").

``Presence`` applies what the bus hears about the others' users and tells the
chat (a ``BusListener``) of every join, leave and rename that follows; the
sending side (heartbeats, queries, snapshots) is the bus's.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from typing import Protocol

from .names import name_keys

__all__ = ["BusListener", "Roster", "Peer", "Presence", "entry_digest"]

log = logging.getLogger("nettools.chatbus")


class BusListener(Protocol):
    """What a chat server does with the other servers' news (names are display names)."""

    def bus_said(self, room: str, nick: str, text: str, ts: float, action: bool) -> None: ...
    def bus_joined(self, room: str, nick: str, ts: float) -> None: ...
    def bus_left(self, room: str, nick: str, reason: str, to: str | None, ts: float) -> None: ...
    def bus_renamed(self, room: str, old: str, new: str, ts: float) -> None: ...
    def bus_rename_local(self, nick: str) -> None:
        """``nick``, a local user's, lost a race with another server: rename that user."""


def entry_digest(nick: str, room_key: str) -> int:
    """One user's share of a roster's digest (``room_key``: the room casefolded)."""
    return zlib.crc32(f"{nick}\0{room_key}".encode("utf-8", "surrogatepass"))


class Roster:
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
        self.digest ^= entry_digest(nick, room.casefold())

    def discard(self, key: str) -> list | None:
        """Forget the user with casefolded nick ``key``; its entry, or None."""
        entry = self.users.pop(key, None)
        if entry is not None:
            self.digest ^= entry_digest(entry[0], entry[1].casefold())
        return entry


class Peer:
    """Another server, as this one knows it."""

    __slots__ = ("id", "roster", "seen", "queried", "snap", "snap_part", "snap_users")

    def __init__(self, server_id: str, now: float) -> None:
        self.id = server_id
        self.roster = Roster()
        self.seen = now
        self.queried = -1e9
        self.snap: int | None = None  # the snapshot being received
        self.snap_part = 0
        self.snap_users: list = []


class Presence:
    """The other servers and their users, as this server (``server_id``, whose
    own users are ``local``) has heard of them."""

    def __init__(self, server_id: str, local: Roster) -> None:
        self.id = server_id
        self.local = local
        self.listener: BusListener | None = None
        self.peers: dict[str, Peer] = {}
        #: Users of all other servers together.
        self.remote_users = 0
        # casefolded room -> {(server id, casefolded nick): nick}: who is where elsewhere.
        self._rooms: dict[str, dict[tuple[str, str], str]] = {}
        # The look-alike keys (names.name_keys) of all their users, counted.
        self._keys: Counter[str] = Counter()

    # ------------------------------------------------------------ questions

    def nick_taken(self, nick: str) -> bool:
        """Whether another server has a user called ``nick``, or a look-alike."""
        return any(self._keys[key] for key in name_keys(nick))

    def nicks_in(self, room: str) -> list[str]:
        """The users other servers have in ``room``."""
        return list(self._rooms.get(room.casefold(), {}).values())

    def count_in(self, room: str) -> int:
        return len(self._rooms.get(room.casefold(), ()))

    # ------------------------------------------------------------ servers

    def heard_from(self, server_id: str, kind: str, now: float) -> Peer | None:
        """The peer a message came from, added if new (None for the ``bye`` of
        a server never heard of)."""
        peer = self.peers.get(server_id)
        if peer is None:
            if kind == "bye":
                return None
            peer = self.peers[server_id] = Peer(server_id, now)
            log.info("chat bus: server %s appeared", server_id)
        peer.seen = now
        return peer

    def expire(self, now: float, expiry: float) -> None:
        """Drop the servers silent for longer than ``expiry`` seconds."""
        for peer in list(self.peers.values()):
            if now - peer.seen > expiry:
                log.info("chat bus: server %s went silent; dropping its %d user(s)",
                         peer.id, len(peer.roster.users))
                self.drop(peer, "server gone")

    def drop(self, peer: Peer, reason: str) -> None:
        """``peer`` is gone: its users leave for ``reason``."""
        del self.peers[peer.id]
        for key, entry in list(peer.roster.users.items()):
            self._unset(peer, key)
            self.listener.bus_left(entry[1], entry[0], reason, None, time.time())

    # ------------------------------------------------------------ their users

    def joined(self, peer: Peer, nick: str, room: str, since: float, ts: float) -> None:
        """``peer`` has ``nick`` in ``room``: record it, tell the chat of a change."""
        old = self._unset(peer, nick.casefold())
        self._add(peer, nick, room, since)
        if old is not None and old[1].casefold() == room.casefold():
            return
        if old is not None:
            self.listener.bus_left(old[1], old[0], "moved", room, ts)
        self.listener.bus_joined(room, nick, ts)
        self._check_conflict(peer, nick, since)

    def left(self, peer: Peer, nick: str, reason: str, to: str | None, ts: float) -> None:
        """``peer``'s user ``nick`` left (for room ``to`` if it ``"moved"``)."""
        entry = peer.roster.users.get(nick.casefold())
        if entry is None:
            return
        if reason == "moved" and to:
            # The move in one step: no moment without the user in either room.
            self.joined(peer, entry[0], to, entry[2], ts)
            return
        self._unset(peer, nick.casefold())
        self.listener.bus_left(entry[1], entry[0], reason, to, ts)

    def renamed(self, peer: Peer, room: str, old: str, new: str, since: float,
                ts: float) -> None:
        """``peer``'s user ``old`` in ``room`` is now called ``new``."""
        if self._unset(peer, old.casefold()) is None:
            self.joined(peer, new, room, since, ts)  # we missed the old one: a join then
            return
        self._add(peer, new, room, since)
        self.listener.bus_renamed(room, old, new, ts)
        self._check_conflict(peer, new, since)

    def snapshot_part(self, peer: Peer, snap: int, part: int, last: bool,
                      entries: list[tuple[str, str, float]], ts: float) -> None:
        """One part of ``peer``'s list of all its users; the last part applies it."""
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

    def _replace(self, peer: Peer, entries: list, ts: float) -> None:
        """A full list of ``peer``'s users: apply the differences."""
        wanted = {nick.casefold(): (nick, room, since) for nick, room, since in entries}
        for key, entry in list(peer.roster.users.items()):
            if key not in wanted or wanted[key][0] != entry[0]:
                self._unset(peer, key)
                self.listener.bus_left(entry[1], entry[0], "", None, ts)
        for nick, room, since in wanted.values():
            self.joined(peer, nick, room, since, ts)

    def _add(self, peer: Peer, nick: str, room: str, since: float) -> None:
        self._unset(peer, nick.casefold())
        peer.roster.add(nick, room, since)
        self._keys.update(name_keys(nick))
        self.remote_users += 1
        self._rooms.setdefault(room.casefold(), {})[(peer.id, nick.casefold())] = nick

    def _unset(self, peer: Peer, key: str) -> list | None:
        """Forget a user of ``peer``; its entry, or None if unknown."""
        entry = peer.roster.discard(key)
        if entry is not None:
            for look in name_keys(entry[0]):
                self._keys[look] -= 1
                if self._keys[look] <= 0:
                    del self._keys[look]
            self.remote_users -= 1
            room_key = entry[1].casefold()
            members = self._rooms.get(room_key)
            if members is not None:
                members.pop((peer.id, key), None)
                if not members:
                    del self._rooms[room_key]
        return entry

    def _check_conflict(self, peer: Peer, nick: str, since: float) -> None:
        """Two servers let two users take one nickname: the later claim loses
        (then the greater server id), on both servers alike."""
        mine = self.local.users.get(nick.casefold())
        if mine is not None and (mine[2], self.id) > (since, peer.id):
            log.info("chat bus: nickname %s was also taken on server %s; renaming ours",
                     mine[0], peer.id)
            self.listener.bus_rename_local(mine[0])
