"""A multi-user line chat for telnet and nc clients: nicknames, rooms, history.

A client picks a unique nickname, lands in the room ``lobby`` (where the last
``history`` messages are replayed to it) and talks; lines starting with ``/``
are commands (``/help`` lists them).  Every client gets two greenthreads: the
``Server`` handler reads its lines, and a writer drains its own bounded outbound
queue.

Ordering: a line is handled entirely inside the reader greenthread that
received it, and broadcasting it is a ``put`` into each recipient's queue that
never waits -- so nothing can run between two recipients, and every client
sees the messages in the order the server received them.

Slow clients (the policy lives in ``nettools.tools.outbox``): a client that
stops reading first fills its kernel send buffer (kept small, ``send_buffer``,
so a backlog shows up here instead of hiding in megabytes of socket buffer);
then its writer waits and lines queue up for it.  Once ``queue_size`` lines
wait, further lines for it are dropped (it is told how many once it catches
up) and its *slow clock* starts; the clock stops when it has read its queue
down to half.  A client whose clock runs for ``slow_timeout`` is disconnected
and its room is told.

Scaling out: with a ``bus`` (``nettools.tools.chatbus``) several servers,
``nettools wschat`` ones included, share rooms through a ZeroMQ forwarder:
their users talk to each other, see each other in ``/who`` and ``/rooms``, get
each other's joins, leaves and renames, and the history a joining client gets
includes the other servers' messages.  A nickname in use on any server is
refused; see the bus module for ordering across servers and for the race of
two servers accepting one nickname at once.

Text from clients is decoded as UTF-8 (invalid bytes become U+FFFD) and control
characters are shown as visible text (ESC as ``^[``), so nobody can clear or
recolour another user's terminal.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..green import socket
from ..greenthread import GreenletExit, sleep
from ..net import Server
from .outbox import Outbox
from .service import Stats

if TYPE_CHECKING:
    from .chatbus import ChatBus

__all__ = ["ChatServer", "ChatStats", "escape_controls", "valid_name", "DEFAULT_ROOM"]

log = logging.getLogger("nettools.chat")

DEFAULT_ROOM = "lobby"
#: Longest nickname or room name, in characters.
NAME_MAX = 32
RECV_SIZE = 65536
#: How long a leaving client's writer may take to flush its last lines when
#: no slow timeout bounds it.
DEFAULT_LINGER = 5.0

HELP = (
    "*** Commands:",
    "***   /who [ROOM]      who is in this room (or in ROOM)",
    "***   /rooms           the rooms and how many people are in each",
    f"***   /join ROOM       leave this room for ROOM (everyone starts in {DEFAULT_ROOM})",
    "***   /nick NEW        change your nickname",
    "***   /me ACTION       tell the room what you are doing: * nick ACTION",
    "***   /quit [MESSAGE]  leave the chat",
    "***   /help            this list",
    "*** Other lines go to everyone in your room; start a line with // to say one that "
    "begins with /.",
)

_NAME_PUNCTUATION = frozenset("_-.[]{}|^`'")
# C0 controls, DEL and the C1 controls (U+009B is a CSI on some terminals).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _visible(m: re.Match) -> str:
    code = ord(m.group())
    if code < 0x20 or code == 0x7F:
        return "^" + chr(code ^ 0x40)  # caret notation: ESC -> ^[, DEL -> ^?
    return f"\\x{code:02x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character replaced by visible text."""
    return _CONTROLS.sub(_visible, text)


def valid_name(name: str) -> bool:
    """A nickname or room name: 1-32 letters, digits or ``_-.[]{}|^`'``."""
    return 0 < len(name) <= NAME_MAX and all(
        ch.isalnum() or ch in _NAME_PUNCTUATION for ch in name
    )


@dataclass
class ChatStats(Stats):
    """``Stats`` plus what only a chat counts."""

    messages: int = 0  # lines and actions said in a room
    dropped: int = 0  # deliveries skipped because a recipient's queue was full
    slow_disconnects: int = 0
    bus: Any = None  # a chat bus's BusStats

    def summary(self, service: str) -> dict:
        d = super().summary(service)
        if d["bus"] is None:
            del d["bus"]
        return d


class _LineTooLong(Exception):
    pass


class _Room:
    __slots__ = ("name", "members", "history")

    def __init__(self, name: str, history: int) -> None:
        self.name = name
        self.members: dict[_Client, None] = {}  # insertion-ordered set
        self.history: deque[str] = deque(maxlen=history)


class _Client:
    __slots__ = ("conn", "outbox", "nick", "since", "room", "gone")

    def __init__(self, conn: socket.socket, outbox: Outbox) -> None:
        self.conn = conn
        self.outbox = outbox
        self.nick: str | None = None
        self.since = 0.0  # when it took its nickname
        self.room: _Room | None = None
        self.gone = False  # removed from the chat already (e.g. dropped as too slow)


class ChatServer:
    """A line chat on a listening green socket (TCP or unix).

    ``history``: messages replayed to a client joining a room.  ``max_line``:
    longest line in bytes; a longer one disconnects that client.
    ``idle_timeout``: disconnect a client that sends nothing for this long.
    ``queue_size``: lines that may wait for a client that is not reading;
    further ones are dropped for it.  ``slow_timeout``: how long its queue may
    stay full before it is disconnected (None: never).  ``send_buffer``: SO_SNDBUF per
    client (0: the system's default).  ``bus``: a ``ChatBus`` to share rooms
    with other servers (started and stopped with this server).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        history: int = 20,
        max_line: int = 4096,
        max_conns: int = 10_000,
        idle_timeout: float | None = None,
        slow_timeout: float | None = 5.0,
        queue_size: int = 256,
        send_buffer: int = 65536,
        stats: ChatStats | Stats | None = None,
        bus: ChatBus | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.history = max(0, history)
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.slow_timeout = slow_timeout
        self.queue_size = queue_size
        self.send_buffer = send_buffer
        self.stats = stats if stats is not None else ChatStats()
        self.server = Server(sock, self._handle, max_conns, name="chat")
        self.rooms: dict[str, _Room] = {}
        self._nicks: dict[str, _Client] = {}  # casefolded nick -> client
        self._clients: set[_Client] = set()
        self._stopping = False
        self._room(DEFAULT_ROOM)
        self.bus = bus
        if bus is not None:
            bus.attach(self)
            if hasattr(self.stats, "bus"):
                self.stats.bus = bus.stats

    @property
    def address(self) -> Any:
        return self.server.address

    @property
    def nicks(self) -> list[str]:
        """The nicknames in use, sorted."""
        return sorted((c.nick for c in self._nicks.values() if c.nick), key=str.casefold)

    def start(self) -> ChatServer:
        if self.bus is not None:
            self.bus.start()
        self.server.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, tell everyone, flush their queues (for up to
        ``timeout`` seconds), then close what is left."""
        if not self._stopping:
            self._stopping = True
            if self.bus is not None:
                self.bus.stop()  # the other servers drop our users at once
            for client in list(self._clients):
                self._send(client, "*** Server is shutting down\n")
                client.outbox.close()  # its writer flushes, then ends the connection
        self.server.stop(timeout)

    def _count(self, name: str, n: int = 1) -> None:
        # Plain Stats (from a caller) lack the chat-only counters.
        if hasattr(self.stats, name):
            setattr(self.stats, name, getattr(self.stats, name) + n)

    # ------------------------------------------------------------ a client

    def _handle(self, conn: socket.socket, addr: Any) -> None:
        if self._stopping:
            return
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        conn.settimeout(self.idle_timeout)
        if self.send_buffer and conn.family != socket.AF_UNIX:
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            except OSError:
                pass  # the peer may already have gone
        client = self._new_client(conn)
        self._clients.add(client)
        reason = ""
        killed = False
        try:
            lines = self._lines(conn)
            if self._choose_nick(client, lines):
                self._join(client, self._room(DEFAULT_ROOM))
                for line in lines:
                    if self._stopping or client.gone:
                        continue  # on its way out: read until the writer ends the connection
                    if not self._dispatch(client, line):
                        break
        except _LineTooLong:
            stats.errors += 1
            self._send(client, f"*** Line longer than {self.max_line} bytes; disconnecting\n")
            reason = "line too long"
        except TimeoutError:
            self._send(client, "*** Disconnected: idle for too long\n")
            reason = "idle"
        except OSError as exc:
            if not (client.gone or self._stopping):
                stats.errors += 1
                reason = "connection lost"
                log.debug("chat: connection error: %s", exc)
        except GreenletExit:
            killed = True  # a stopping server ran out of drain time
            raise
        finally:
            try:
                self._clients.discard(client)
                if not self._stopping:
                    self._leave(client, reason)
                if client.nick is not None and self._nicks.get(client.nick.casefold()) is client:
                    del self._nicks[client.nick.casefold()]
                client.gone = True
                # Let the writer flush the last lines (a goodbye, an error), but
                # never wait long for a client that does not read.
                if not killed:
                    client.outbox.finish(self.slow_timeout or DEFAULT_LINGER)
            finally:
                client.outbox.kill()
                stats.active -= 1

    def _new_client(self, conn: socket.socket) -> _Client:
        """A client whose outbox writer sends its lines and, when done, ends the
        connection (so its reader sees EOF and cleans up)."""
        stats = self.stats

        def send(lines: list[str]) -> None:
            data = "".join(lines).encode("utf-8")
            conn.sendall(data)
            stats.bytes_out += len(data)

        outbox = Outbox(
            send,
            queue_size=self.queue_size,
            slow_timeout=self.slow_timeout,
            on_slow=lambda: self._drop_slow(client),
            on_caught_up=lambda missed: self._send(
                client, f"*** You read too slowly: {missed} message(s) were not delivered\n"
            ),
            on_end=lambda clean: _shutdown(conn),
        )
        client = _Client(conn, outbox)
        outbox.start()
        return client

    def _lines(self, conn: socket.socket) -> Iterator[str]:
        """The client's lines (decoded, without the line ending) until EOF."""
        stats, max_line = self.stats, self.max_line
        pending = b""
        while True:
            data = conn.recv(RECV_SIZE)
            if not data:
                return  # an unfinished last line is dropped, as in echo
            stats.bytes_in += len(data)
            *lines, pending = (pending + data).split(b"\n")
            for raw in lines:
                if len(raw) > max_line:
                    raise _LineTooLong
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                yield raw.decode("utf-8", "replace")
            if len(pending) > max_line:
                raise _LineTooLong
            if lines:
                # recv tries first and only waits when nothing is there, so a
                # client that floods could otherwise keep the hub to itself.
                sleep(0)

    def _choose_nick(self, client: _Client, lines: Iterator[str]) -> bool:
        """Ask until the client gives a free, valid nickname; False if it left."""
        self._send(client, "*** Welcome to nettools chat! Choose a nickname:\n")
        for line in lines:
            if self._stopping:
                continue
            text = line.strip()
            command, _, arg = text.partition(" ")
            if command.lower() == "/quit":
                return False
            if command.lower() == "/nick":
                text = arg.strip()
            problem = self._nick_problem(text)
            if problem:
                self._send(client, f"*** {problem}; choose another:\n")
                continue
            client.nick = text
            client.since = time.time()
            self._nicks[text.casefold()] = client
            self._send(client, f"*** Hello, {text}! Type /help for the commands.\n")
            return True
        return False

    def _nick_problem(self, nick: str, current: _Client | None = None) -> str | None:
        """Why ``nick`` cannot be had (by ``current``), or None."""
        if not valid_name(nick):
            return (
                f"Invalid nickname {escape_controls(nick)!r}: use 1-{NAME_MAX} letters, "
                "digits or _-.[]{}|^`'"
            )
        holder = self._nicks.get(nick.casefold())
        if holder is not None and holder is not current:
            return f"Nickname {nick} is taken"
        if self.bus is not None and self.bus.nick_taken(nick):
            return f"Nickname {nick} is taken (on another server)"
        return None

    # ------------------------------------------------------------ commands

    def _dispatch(self, client: _Client, line: str) -> bool:
        """Handle one line; False when the client quits."""
        if not line.strip():
            return True
        if line.startswith("//"):
            line = line[1:]
        elif line.startswith("/"):
            command, _, arg = line.partition(" ")
            handler = self._COMMANDS.get(command.lower())
            if handler is None:
                self._send(client, f"*** Unknown command {escape_controls(command)}; try /help\n")
                return True
            return handler(self, client, arg.strip())
        self._say(client, line)
        return True

    def _cmd_help(self, client: _Client, arg: str) -> bool:
        for line in HELP:
            self._send(client, line + "\n")
        return True

    def _cmd_who(self, client: _Client, arg: str) -> bool:
        name = arg.lstrip("#") or client.room.name
        room = self.rooms.get(name.casefold())
        if room is None:
            self._send(client, f"*** No room named {escape_controls(name)}\n")
        elif not (names := self._nicks_in(room)):
            self._send(client, f"*** Nobody is in {room.name}\n")
        else:
            self._send(client, f"*** In {room.name}: {', '.join(names)}\n")
        return True

    def _cmd_rooms(self, client: _Client, arg: str) -> bool:
        counts = sorted(
            ((r.name, self._count_in(r)) for r in self.rooms.values()),
            key=lambda rc: rc[0].casefold(),
        )
        listing = ", ".join(f"{n} ({c})" for n, c in counts if c or n == DEFAULT_ROOM)
        self._send(client, f"*** Rooms: {listing}\n")
        return True

    def _cmd_join(self, client: _Client, arg: str) -> bool:
        name = arg.lstrip("#")
        if not valid_name(name):
            self._send(
                client,
                f"*** Usage: /join ROOM (1-{NAME_MAX} letters, digits or _-.[]{{}}|^`')\n",
            )
        elif name.casefold() == client.room.name.casefold():
            self._send(client, f"*** You are already in {client.room.name}\n")
        else:
            room = self._room(name)
            self._leave(client, f"joined {room.name}", to=room.name)
            self._join(client, room)
        return True

    def _cmd_nick(self, client: _Client, arg: str) -> bool:
        old = client.nick
        if arg == old:
            return True
        problem = self._nick_problem(arg, client)  # "alice" may become "Alice"
        if problem:
            self._send(client, f"*** {problem}\n")
            return True
        self._rename(client, arg)
        return True

    def _rename(self, client: _Client, new: str) -> None:
        old = client.nick
        del self._nicks[old.casefold()]
        self._nicks[new.casefold()] = client
        client.nick = new
        client.since = time.time()
        self._broadcast(client.room, f"*** {old} is now known as {new}\n")
        if self.bus is not None:
            self.bus.renamed(client.room.name, old, new, client.since)

    def _cmd_me(self, client: _Client, arg: str) -> bool:
        if not arg:
            self._send(client, "*** Usage: /me ACTION\n")
        else:
            self._say(client, arg, action=True)
        return True

    def _cmd_quit(self, client: _Client, arg: str) -> bool:
        self._send(client, "*** Bye!\n")
        if arg:
            self._leave(client, f"quit: {escape_controls(arg)}")
        return False

    _COMMANDS = {
        "/help": _cmd_help,
        "/who": _cmd_who,
        "/rooms": _cmd_rooms,
        "/join": _cmd_join,
        "/nick": _cmd_nick,
        "/me": _cmd_me,
        "/quit": _cmd_quit,
    }

    # ------------------------------------------------------------ rooms

    def _room(self, name: str) -> _Room:
        room = self.rooms.get(name.casefold())
        if room is None:
            room = self.rooms[name.casefold()] = _Room(name, self.history)
        return room

    def _nicks_in(self, room: _Room) -> list[str]:
        """Everyone in ``room``, on this server and on the others."""
        names = [m.nick for m in room.members]
        if self.bus is not None:
            names += self.bus.nicks_in(room.name)
        return sorted(names, key=str.casefold)

    def _count_in(self, room: _Room) -> int:
        return len(room.members) + (self.bus.count_in(room.name) if self.bus is not None else 0)

    def _prune(self, room: _Room) -> None:
        """Empty rooms (and their history) go; the lobby stays."""
        if room.name != DEFAULT_ROOM and not self._count_in(room):
            self.rooms.pop(room.name.casefold(), None)

    def _join(self, client: _Client, room: _Room) -> None:
        others = self._nicks_in(room)
        here = f"with {', '.join(others)}" if others else "alone"
        self._send(client, f"*** You are in {room.name}, {here}\n")
        for line in room.history:
            self._send(client, line)
        self._broadcast(room, f"*** {client.nick} joined {room.name}\n")
        room.members[client] = None
        client.room = room
        if self.bus is not None:
            self.bus.joined(room.name, client.nick, client.since)

    def _leave(
        self, client: _Client, reason: str = "", notice: str | None = None,
        to: str | None = None,
    ) -> None:
        """Take ``client`` out of its room and tell the others (``to``: the
        room it moves to)."""
        room = client.room
        if room is None:
            return
        client.room = None
        del room.members[client]
        if notice is None:
            notice = f"*** {client.nick} left {room.name}" + (f" ({reason})" if reason else "")
        self._broadcast(room, notice + "\n")
        if self.bus is not None:
            self.bus.left(room.name, client.nick, "moved" if to else reason, to)
        self._prune(room)

    def _say(self, client: _Client, text: str, action: bool = False) -> None:
        """A message or action: kept in the room's history, sent to everyone else."""
        room = client.room
        line = _said(client.nick, escape_controls(text), action)
        self._keep(room, line)
        self._broadcast(room, line, exclude=client)
        if self.bus is not None:
            self.bus.said(room.name, client.nick, text, action)

    def _keep(self, room: _Room, line: str) -> None:
        room.history.append(line)
        self._count("messages")

    def _broadcast(self, room: _Room, line: str, exclude: _Client | None = None) -> None:
        # Never waits (see _send), so no other greenthread runs in between and
        # every member sees the room's lines in the same order.
        for member in room.members:
            if member is not exclude:
                self._send(member, line)

    # ------------------------------------------------------------ output

    def _send(self, client: _Client, line: str) -> None:
        """Queue ``line`` for ``client`` without waiting; drop it if the client is slow."""
        outbox = client.outbox
        if not outbox.closing and not outbox.put(line):
            self._count("dropped")

    def _drop_slow(self, client: _Client) -> None:
        """Its outbox gave up on it: take it out of the chat and cut it off."""
        if client.gone:
            return
        client.gone = True
        self._count("slow_disconnects")
        log.info("chat: disconnecting %s: too slow", client.nick or "a client")
        if client.nick is not None:
            self._leave(client, "too slow", notice=f"*** {client.nick} was disconnected (too slow)")
        _shutdown(client.conn)  # wakes its reader (EOF) and its writer (EPIPE)


    # ------------------------------------------------------------ the other servers

    def bus_said(self, room: str, nick: str, text: str, ts: float, action: bool) -> None:
        target = self.rooms.get(room.casefold())
        if target is None and not self.bus.count_in(room):
            return  # nobody is there that we know of: no history to keep
        target = self._room(room)
        line = _said(nick, _clean(text), action)
        self._keep(target, line)
        self._broadcast(target, line)

    def bus_joined(self, room: str, nick: str, ts: float) -> None:
        target = self._room(room)
        self._broadcast(target, f"*** {nick} joined {target.name}\n")

    def bus_left(self, room: str, nick: str, reason: str, to: str | None, ts: float) -> None:
        target = self.rooms.get(room.casefold())
        if target is None:
            return
        if reason == "moved" and to:
            reason = f"joined {to}"
        why = f" ({_clean(reason)})" if reason and reason != "left" else ""
        self._broadcast(target, f"*** {nick} left {target.name}{why}\n")
        self._prune(target)

    def bus_renamed(self, room: str, old: str, new: str, ts: float) -> None:
        target = self.rooms.get(room.casefold())
        if target is not None:
            self._broadcast(target, f"*** {old} is now known as {new}\n")

    def bus_rename_local(self, nick: str) -> None:
        client = self._nicks.get(nick.casefold())
        if client is None or client.room is None:
            return
        new = self.bus.free_nick(nick, lambda name: name.casefold() in self._nicks)
        self._send(client, f"*** Nickname {nick} was taken on another server at the same "
                           f"time; you are now {new}\n")
        self._rename(client, new)


def _said(nick: str, text: str, action: bool) -> str:
    """A message line as clients see it; ``text`` already escaped."""
    return f"* {nick} {text}\n" if action else f"<{nick}> {text}\n"


def _clean(text: str) -> str:
    """Text from another server, safe to show: no lone surrogates (which have
    no UTF-8) and no control characters."""
    return escape_controls(text.encode("utf-8", "replace").decode("utf-8"))


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
