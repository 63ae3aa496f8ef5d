"""What every chat server shares, whatever its transport: rooms, members,
nicknames, history, the chat bus and its presence.

``ChatRooms`` is the base of ``ChatServer`` (lines over TCP) and
``WSChatServer`` (JSON over websockets).  It keeps the rooms and who is in
them, hands out nicknames, keeps each room's history and tells the bus (and
hears from it); a subclass reads its clients and renders each event in its own
way through the ``_*_item`` hooks (a line of text, a JSON object...).

Ordering: broadcasting is a ``put`` into each member's outbox that never waits
(see ``nettools.tools.plumbing.outbox``), so nothing runs between two members and every
member sees a room's events in the same order.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...green import socket
from ..plumbing.outbox import DEFAULT_LINGER, Outbox
from ..plumbing.service import Stats
from .flood import FloodGuard, Verdict, check_rate
from .metrics import add_chat_families
from .names import NameIndex, free_name
from .safetext import show_invisible

if TYPE_CHECKING:
    from .bus import ChatBus

__all__ = ["ChatRooms", "ChatStats", "Room", "Member", "DEFAULT_ROOM"]

DEFAULT_ROOM = "lobby"


@dataclass
class ChatStats(Stats):
    """``Stats`` plus what only a chat counts."""

    messages: int = 0  # lines and actions said in a room
    dropped: int = 0  # deliveries skipped because a recipient's queue was full
    slow_disconnects: int = 0
    rate_limited: int = 0  # messages refused: over the client's rate
    flood_disconnects: int = 0
    bus: Any = None  # a chat bus's BusStats

    def summary(self, service: str) -> dict:
        d = super().summary(service)
        if d["bus"] is None:
            del d["bus"]
        return d


class Room:
    """A room: its members (an insertion-ordered set) and its last messages."""

    __slots__ = ("name", "members", "history")

    def __init__(self, name: str, history: int) -> None:
        self.name = name
        self.members: dict[Any, None] = {}
        self.history: deque = deque(maxlen=history)


class Member:
    """A connected client as the rooms see it: its outbox, flood control,
    nickname and room."""

    __slots__ = ("outbox", "flood", "nick", "since", "room", "gone")

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.flood: FloodGuard | None = None  # set on admission
        self.nick: str | None = None
        self.since = 0.0  # when it took its nickname
        self.room: Room | None = None
        self.gone = False  # out of the chat already (e.g. dropped as too slow)


class ChatRooms:
    """Rooms, nicknames and history for the clients of one chat server, shared
    with other servers through an optional ``bus`` (a ``ChatBus``, started and
    stopped with the server).

    ``rate``/``burst``: each client's flood control (``nettools.tools.chat.flood``);
    a subclass screens each message with ``_screen``.  A subclass renders
    events with the ``_*_item`` hooks, ends connections with ``_cut`` and sets
    ``_label`` and ``_log``.
    """

    #: Whether a speaker gets its own message back.
    _ECHO_OWN = False
    #: The service's name in log lines, and its logger.
    _label = "chat"
    _log = logging.getLogger("nettools.chat")

    def __init__(
        self,
        *,
        history: int,
        rate: float,
        burst: int,
        queue_size: int,
        slow_timeout: float | None,
        send_buffer: int,
        stats: Stats,
        bus: ChatBus | None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        check_rate(rate, burst)
        self.history = max(0, history)
        self.rate = rate
        self.burst = burst
        self.queue_size = queue_size
        self.slow_timeout = slow_timeout
        self.send_buffer = send_buffer
        self.stats = stats
        self.rooms: dict[str, Room] = {}
        self._names = NameIndex()  # nickname (or a look-alike) -> client
        self._clients: set[Member] = set()
        self._stopping = False
        self._room(DEFAULT_ROOM)
        self.bus = bus
        if bus is not None:
            bus.attach(self)
            if hasattr(self.stats, "bus"):
                self.stats.bus = bus.stats
        self.stats.metric_sources.append(lambda f: add_chat_families(f, self))

    @property
    def nicks(self) -> list[str]:
        """The nicknames in use, sorted."""
        return sorted((c.nick for c in self._clients if c.nick), key=str.casefold)

    @property
    def user_count(self) -> int:
        """Clients of this server with a nickname."""
        return sum(1 for c in self._clients if c.nick)

    @property
    def occupied_rooms(self) -> int:
        """Rooms with at least one client of this server in them."""
        return sum(1 for room in self.rooms.values() if room.members)

    def _start_bus(self) -> None:
        if self.bus is not None:
            self.bus.start()

    def _begin_stop(self) -> bool:
        """Mark the server stopping and leave the bus; True the first time."""
        if self._stopping:
            return False
        self._stopping = True
        if self.bus is not None:
            self.bus.stop()  # the other servers drop our users at once
        return True

    def _count(self, name: str, n: int = 1) -> None:
        # Plain Stats (from a caller) lack the chat-only counters.
        if hasattr(self.stats, name):
            setattr(self.stats, name, getattr(self.stats, name) + n)

    # ------------------------------------------------------------ clients

    def _admit(
        self,
        make: Callable[[Outbox], Member],
        send: Callable[[list[Any]], Any],
        on_end: Callable[[bool], Any] | None = None,
    ) -> Any:
        """A new client, ``make(outbox)``, counted and in the chat; its outbox
        writer sends with ``send`` under the slow-client policy."""
        outbox = Outbox(
            send,
            queue_size=self.queue_size,
            slow_timeout=self.slow_timeout,
            on_slow=lambda: self._drop_slow(client),
            on_caught_up=lambda missed: self._put(client, self._encode(self._missed_item(missed))),
            on_end=on_end,
        )
        client = make(outbox)
        client.flood = FloodGuard(self.rate, self.burst)
        outbox.start()
        self.stats.connections += 1
        self.stats.active += 1
        self._clients.add(client)
        return client

    def _flush(self, client: Member) -> bool:
        """Let the writer flush the last lines (a goodbye, an error), but never
        wait long for a client that does not read; False if it had to stop."""
        return client.outbox.finish(self.slow_timeout or DEFAULT_LINGER)

    def _depart(self, client: Member, reason: str) -> None:
        """Take a client whose connection ends out of the chat."""
        self._clients.discard(client)
        if not self._stopping:
            self._leave(client, reason)
        if client.nick is not None:
            self._names.remove(client.nick, client)
        client.gone = True

    def _screen(self, client: Member) -> Verdict:
        """Flood control on one more message of ``client``: OK, LIMITED (refuse
        it, and say so) or FLOODING (disconnect it); counted here."""
        verdict = client.flood.check()
        if verdict is Verdict.LIMITED:
            self._count("rate_limited")
        elif verdict is Verdict.FLOODING:
            self._count("flood_disconnects")
            self._log.info("%s: disconnecting %s: flooding", self._label,
                           client.nick or "a client")
        return verdict

    def _set_send_buffer(self, sock: socket.socket) -> None:
        # Small, so a backlog shows up in the outbox instead of hiding in
        # megabytes of socket buffer.
        if self.send_buffer:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            except OSError:
                pass  # the peer may already have gone

    def _taken_here(self, nick: str, current: Member | None = None) -> bool:
        holder = self._names.holder(nick)
        return holder is not None and holder is not current

    def _taken_elsewhere(self, nick: str) -> bool:
        return self.bus is not None and self.bus.nick_taken(nick)

    def _claim(self, client: Member, nick: str) -> None:
        client.nick = nick
        client.since = time.time()
        self._names.add(nick, client)

    def _rename(self, client: Member, new: str) -> None:
        old = client.nick
        self._names.remove(old, client)
        self._names.add(new, client)
        client.nick = new
        client.since = time.time()
        room = client.room
        self._broadcast(room, self._renamed_item(room, old, new, client.since))
        if self.bus is not None:
            self.bus.renamed(room.name, old, new, client.since)

    def _drop_slow(self, client: Member) -> None:
        """Its outbox gave up on it: take it out of the chat and cut it off."""
        if client.gone:
            return
        client.gone = True
        self._count("slow_disconnects")
        self._ended(client, "slow")
        self._log.info("%s: disconnecting %s: too slow", self._label, client.nick or "a client")
        self._leave(client, "too slow", item=self._slow_item(client))
        self._cut(client)

    def _ended(self, client: Member, reason: str) -> None:
        """Tell the server why ``client``'s connection ends (see ``net.Server.end_reason``)."""

    def _cut(self, client: Member) -> None:
        """End ``client``'s connection at once (it does not read)."""
        raise NotImplementedError

    # ------------------------------------------------------------ rooms

    def _room(self, name: str) -> Room:
        room = self.rooms.get(name.casefold())
        if room is None:
            room = self.rooms[name.casefold()] = Room(name, self.history)
        return room

    def _nicks_in(self, room: Room) -> list[str]:
        """Everyone in ``room``, on this server and on the others."""
        names = [m.nick for m in room.members]
        if self.bus is not None:
            names += self.bus.nicks_in(room.name)
        return sorted(names, key=str.casefold)

    def _count_in(self, room: Room) -> int:
        return len(room.members) + (self.bus.count_in(room.name) if self.bus is not None else 0)

    def _room_counts(self) -> list[tuple[str, int]]:
        """(name, people) of every room with someone in it, and the lobby, by name."""
        counts = sorted(
            ((r.name, self._count_in(r)) for r in self.rooms.values()),
            key=lambda rc: rc[0].casefold(),
        )
        return [(n, c) for n, c in counts if c or n == DEFAULT_ROOM]

    def _prune(self, room: Room) -> None:
        """Empty rooms (and their history) go; the lobby stays."""
        if room.name != DEFAULT_ROOM and not self._count_in(room):
            self.rooms.pop(room.name.casefold(), None)

    def _enter(self, client: Member, room: Room) -> None:
        """Put ``client`` in ``room``; the others hear of it."""
        self._broadcast(room, self._joined_item(room, client.nick, time.time()))
        room.members[client] = None
        client.room = room
        if self.bus is not None:
            self.bus.joined(room.name, client.nick, client.since)

    def _leave(
        self, client: Member, reason: str = "", to: str | None = None, item: Any = None
    ) -> None:
        """Take ``client`` out of its room and tell the others (``to``: the
        room it moves to, with the reason ``"moved"``; ``item``: instead of
        the usual notice)."""
        room = client.room
        if room is None:
            return
        client.room = None
        del room.members[client]
        if item is None:
            item = self._left_item(room, client.nick, reason, to, time.time())
        self._broadcast(room, item)
        if self.bus is not None:
            self.bus.left(room.name, client.nick, reason, to)
        self._prune(room)

    def _say(self, client: Member, text: str, action: bool = False) -> None:
        """A message or action of ``client`` in its room (its invisible
        characters made visible, for everyone here and on the bus)."""
        room = client.room
        text = show_invisible(text)
        item = self._said_item(room, client.nick, text, time.time(), action)
        self._post(room, item, exclude=None if self._ECHO_OWN else client)
        if self.bus is not None:
            self.bus.said(room.name, client.nick, text, action)

    def _post(self, room: Room, item: Any, exclude: Member | None = None) -> None:
        """A message: kept in the room's history, sent to its members."""
        room.history.append(item)
        self._count("messages")
        self._broadcast(room, item, exclude)

    def _broadcast(self, room: Room, item: Any, exclude: Member | None = None) -> None:
        # Encoded once; never waits (see _put), so no other greenthread runs in
        # between and every member sees the room's events in the same order.
        data = self._encode(item)
        for member in room.members:
            if member is not exclude:
                self._put(member, data)

    def _put(self, client: Member, data: Any) -> None:
        """Queue ``data`` for ``client`` without waiting; drop it if the client is slow."""
        outbox = client.outbox
        if not outbox.closing and not outbox.put(data):
            self._count("dropped")

    # ------------------------------------------------------------ rendering

    def _encode(self, item: Any) -> Any:
        """What goes into the outboxes for ``item``."""
        return item

    def _said_item(self, room: Room, nick: str, text: str, ts: float, action: bool) -> Any:
        raise NotImplementedError

    def _joined_item(self, room: Room, nick: str, ts: float) -> Any:
        raise NotImplementedError

    def _left_item(self, room: Room, nick: str, reason: str, to: str | None, ts: float) -> Any:
        raise NotImplementedError

    def _renamed_item(self, room: Room, old: str, new: str, ts: float) -> Any:
        raise NotImplementedError

    def _missed_item(self, missed: int) -> Any:
        """The notice for a client that caught up after ``missed`` drops."""
        raise NotImplementedError

    def _slow_item(self, client: Member) -> Any:
        """The notice for a client dropped as too slow (None: the usual one)."""
        return None

    def _lost_nick(self, client: Member, old: str, new: str) -> None:
        """``client`` is about to be renamed from ``old`` to ``new`` by the bus."""

    # ------------------------------------------------------------ the other servers

    def bus_said(self, room: str, nick: str, text: str, ts: float, action: bool) -> None:
        if self.rooms.get(room.casefold()) is None and not self.bus.count_in(room):
            return  # nobody is there that we know of: no history to keep
        target = self._room(room)
        self._post(target, self._said_item(target, nick, show_invisible(text), ts, action))

    def bus_joined(self, room: str, nick: str, ts: float) -> None:
        target = self._room(room)
        self._broadcast(target, self._joined_item(target, nick, ts))

    def bus_left(self, room: str, nick: str, reason: str, to: str | None, ts: float) -> None:
        target = self.rooms.get(room.casefold())
        if target is None:
            return
        self._broadcast(target, self._left_item(target, nick, show_invisible(reason), to, ts))
        self._prune(target)

    def bus_renamed(self, room: str, old: str, new: str, ts: float) -> None:
        target = self.rooms.get(room.casefold())
        if target is not None:
            self._broadcast(target, self._renamed_item(target, old, new, ts))

    def bus_rename_local(self, nick: str) -> None:
        client = self._names.holder(nick)
        if client is None or client.room is None:
            return
        new = free_name(nick, lambda name: self._taken_here(name) or self._taken_elsewhere(name))
        self._lost_nick(client, nick, new)
        self._rename(client, new)
