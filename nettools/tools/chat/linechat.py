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

Flooding (the policy lives in ``nettools.tools.chat.flood``, the browser
chat's too): each client may send ``rate`` lines a second, in bursts of
``burst``; a line beyond that is not said, and the client is told so; a client
that keeps sending while refused is disconnected ("flooding").

Slow clients (the policy lives in ``nettools.tools.plumbing.outbox``): a client that
stops reading first fills its kernel send buffer (kept small, ``send_buffer``,
so a backlog shows up here instead of hiding in megabytes of socket buffer);
then its writer waits and lines queue up for it.  Once ``queue_size`` lines
wait, further lines for it are dropped (it is told how many once it catches
up).  A client that reads nothing at all for ``slow_timeout`` while lines are
being dropped for it is disconnected and its room is told; one that reads,
however slowly, only misses lines.

Scaling out: with a ``bus`` (``nettools.tools.chat.bus``) several servers,
``nettools wschat`` ones included, share rooms through a ZeroMQ forwarder:
their users talk to each other, see each other in ``/who`` and ``/rooms``, get
each other's joins, leaves and renames, and the history a joining client gets
includes the other servers' messages.  A nickname in use on any server is
refused; see the bus module for ordering across servers and for the race of
two servers accepting one nickname at once.

Text from clients is decoded as UTF-8 (invalid bytes become U+FFFD); control
characters are shown as visible text (ESC as ``^[``) and invisible ones as
``<U+202E>``, so nobody can clear, recolour or reorder another user's terminal.
Nicknames follow ``nettools.tools.chat.names``: one script, no look-alike of a
nickname in use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...green import socket
from ...kernel.greenthread import GreenletExit
from ...net import Server, shutdown_quietly
from ..plumbing.lines import LineTooLong, recv_lines
from ..plumbing.outbox import Outbox
from ..plumbing.service import Stats, error_kind
from .flood import Verdict
from .metrics import END_REASONS
from .names import NAME_RULE, name_problem, normal_name, valid_name
from .rooms import DEFAULT_ROOM, ChatRooms, ChatStats, Member, Room
from .safetext import show_invisible

if TYPE_CHECKING:
    from .bus import ChatBus

__all__ = ["ChatServer", "ChatStats", "escape_controls", "valid_name", "DEFAULT_ROOM"]

log = logging.getLogger("nettools.chat")

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


class _Flooding(Exception):
    """The client kept sending while its lines were refused."""


class _Client(Member):
    __slots__ = ("conn",)

    def __init__(self, conn: socket.socket, outbox: Outbox) -> None:
        super().__init__(outbox)
        self.conn = conn


class ChatServer(ChatRooms):
    """A line chat on a listening green socket (TCP or unix).

    ``history``: messages replayed to a client joining a room.  ``max_line``:
    longest line in bytes; a longer one disconnects that client.  ``rate``
    and ``burst``: each client's flood control (``nettools.tools.chat.flood``).
    ``idle_timeout``: disconnect a client that sends nothing for this long.
    ``queue_size``: lines that may wait for a client that is not reading;
    further ones are dropped for it.  ``slow_timeout``: how long it may read
    nothing while lines are dropped before it is disconnected (None: never).
    ``send_buffer``: SO_SNDBUF per client (0: the system's default).  ``bus``:
    a ``ChatBus`` to share rooms with other servers (started and stopped with
    this server).
    """

    _log = log

    def __init__(
        self,
        sock: socket.socket,
        *,
        history: int = 20,
        max_line: int = 4096,
        max_conns: int = 10_000,
        rate: float = 5.0,
        burst: int = 10,
        idle_timeout: float | None = None,
        slow_timeout: float | None = 5.0,
        queue_size: int = 256,
        send_buffer: int = 65536,
        stats: ChatStats | Stats | None = None,
        bus: ChatBus | None = None,
    ) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        super().__init__(
            history=history, rate=rate, burst=burst, queue_size=queue_size,
            slow_timeout=slow_timeout, send_buffer=send_buffer,
            stats=stats if stats is not None else ChatStats(), bus=bus,
        )
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.server = Server(sock, self._handle, max_conns, name="chat")

    @property
    def address(self) -> Any:
        return self.server.address

    def start(self) -> ChatServer:
        self._start_bus()
        self.server.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, tell everyone, flush their queues (for up to
        ``timeout`` seconds), then close what is left."""
        if self._begin_stop():
            for client in list(self._clients):
                self._send(client, "*** Server is shutting down\n")
                client.outbox.close()  # its writer flushes, then ends the connection
        self.server.stop(timeout)

    # ------------------------------------------------------------ a client

    def _handle(self, conn: socket.socket, addr: Any) -> None:
        if self._stopping:
            return
        stats = self.stats
        conn.settimeout(self.idle_timeout)
        if conn.family != socket.AF_UNIX:
            self._set_send_buffer(conn)
        client = self._new_client(conn)
        reason = ""
        killed = False
        try:
            lines = self._screened(client, self._lines(conn))
            if self._choose_nick(client, lines):
                self._join(client, self._room(DEFAULT_ROOM))
                for line in lines:
                    if self._stopping or client.gone:
                        continue  # on its way out: read until the writer ends the connection
                    if not self._dispatch(client, line):
                        break
        except _Flooding:
            self._send(client, f"*** Disconnected: flooding (more than {self.rate:g} lines "
                               "a second)\n")
            reason = "flooding"
        except LineTooLong:
            stats.error("line_too_long")
            self._send(client, f"*** Line longer than {self.max_line} bytes; disconnecting\n")
            reason = "line too long"
        except TimeoutError:
            self._send(client, "*** Disconnected: idle for too long\n")
            reason = "idle"
        except OSError as exc:
            if not (client.gone or self._stopping):
                stats.error(error_kind(exc))
                reason = "connection lost"
                log.debug("chat: connection error: %s", exc)
        except GreenletExit:
            killed = True  # a stopping server ran out of drain time
            raise
        finally:
            if not (killed or client.gone or self._stopping):
                self._ended(client, END_REASONS.get(reason, "client"))
            try:
                self._depart(client, reason)
                if not killed:
                    self._flush(client)
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

        return self._admit(
            lambda outbox: _Client(conn, outbox), send, on_end=lambda clean: shutdown_quietly(conn)
        )

    def _lines(self, conn: socket.socket) -> Iterator[str]:
        """The client's lines, decoded, until EOF."""
        for raw in recv_lines(conn, self.max_line, self.stats):
            yield raw.decode("utf-8", "replace")

    def _screened(self, client: _Client, lines: Iterator[str]) -> Iterator[str]:
        """``lines`` under flood control: a line over the rate is refused (the
        client is told); raises ``_Flooding`` for a client that keeps on."""
        for line in lines:
            if self._stopping or client.gone:
                yield line  # on its way out: no more flood control needed
                continue
            verdict = self._screen(client)
            if verdict is Verdict.OK:
                yield line
            elif verdict is Verdict.LIMITED:
                self._send(client, f"*** Slow down: at most {self.rate:g} lines a second; "
                                   "that line was not sent\n")
            else:
                raise _Flooding

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
                text = arg
            text = normal_name(text)
            problem = self._nick_problem(text)
            if problem:
                self._send(client, f"*** {problem}; choose another:\n")
                continue
            self._claim(client, text)
            self._send(client, f"*** Hello, {text}! Type /help for the commands.\n")
            return True
        return False

    def _nick_problem(self, nick: str, current: _Client | None = None) -> str | None:
        """Why ``nick`` (normalised) cannot be had (by ``current``), or None."""
        problem = name_problem(nick)
        if problem:
            return f"Invalid nickname {escape_controls(show_invisible(nick))!r}: {problem}"
        if self._taken_here(nick, current):
            return f"Nickname {nick} is taken"
        if self._taken_elsewhere(nick):
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
        name = normal_name(arg).lstrip("#") or client.room.name
        room = self.rooms.get(name.casefold())
        if room is None:
            self._send(client, f"*** No room named {escape_controls(show_invisible(name))}\n")
        elif not (names := self._nicks_in(room)):
            self._send(client, f"*** Nobody is in {room.name}\n")
        else:
            self._send(client, f"*** In {room.name}: {', '.join(names)}\n")
        return True

    def _cmd_rooms(self, client: _Client, arg: str) -> bool:
        listing = ", ".join(f"{n} ({c})" for n, c in self._room_counts())
        self._send(client, f"*** Rooms: {listing}\n")
        return True

    def _cmd_join(self, client: _Client, arg: str) -> bool:
        name = normal_name(arg).lstrip("#")
        if not valid_name(name):
            self._send(client, f"*** Usage: /join ROOM ({NAME_RULE})\n")
        elif name.casefold() == client.room.name.casefold():
            self._send(client, f"*** You are already in {client.room.name}\n")
        else:
            room = self._room(name)
            self._leave(client, "moved", to=room.name)
            self._join(client, room)
        return True

    def _cmd_nick(self, client: _Client, arg: str) -> bool:
        old = client.nick
        arg = normal_name(arg)
        if arg == old:
            return True
        problem = self._nick_problem(arg, client)  # "alice" may become "Alice"
        if problem:
            self._send(client, f"*** {problem}\n")
            return True
        self._rename(client, arg)
        return True

    def _cmd_me(self, client: _Client, arg: str) -> bool:
        if not arg:
            self._send(client, "*** Usage: /me ACTION\n")
        else:
            self._say(client, arg, action=True)
        return True

    def _cmd_quit(self, client: _Client, arg: str) -> bool:
        self._send(client, "*** Bye!\n")
        if arg:
            self._leave(client, f"quit: {escape_controls(show_invisible(arg))}")
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

    def _join(self, client: _Client, room: Room) -> None:
        others = self._nicks_in(room)
        here = f"with {', '.join(others)}" if others else "alone"
        self._send(client, f"*** You are in {room.name}, {here}\n")
        for line in room.history:
            self._send(client, line)
        self._enter(client, room)

    # ------------------------------------------------------------ output

    _send = ChatRooms._put

    def _ended(self, client: _Client, reason: str) -> None:
        self.server.end_reason(client.conn, reason)

    def _cut(self, client: _Client) -> None:
        shutdown_quietly(client.conn)  # wakes its reader (EOF) and its writer (EPIPE)

    def _said_item(self, room: Room, nick: str, text: str, ts: float, action: bool) -> str:
        return _said(nick, _clean(text), action)

    def _joined_item(self, room: Room, nick: str, ts: float) -> str:
        return f"*** {nick} joined {room.name}\n"

    def _left_item(self, room: Room, nick: str, reason: str, to: str | None, ts: float) -> str:
        if reason == "moved" and to:
            reason = f"joined {to}"
        why = f" ({_clean(reason)})" if reason and reason != "left" else ""
        return f"*** {nick} left {room.name}{why}\n"

    def _renamed_item(self, room: Room, old: str, new: str, ts: float) -> str:
        return f"*** {old} is now known as {new}\n"

    def _missed_item(self, missed: int) -> str:
        return f"*** You read too slowly: {missed} message(s) were not delivered\n"

    def _slow_item(self, client: _Client) -> str:
        return f"*** {client.nick} was disconnected (too slow)\n"

    def _lost_nick(self, client: _Client, old: str, new: str) -> None:
        self._send(client, f"*** Nickname {old} was taken on another server at the same "
                           f"time; you are now {new}\n")


def _said(nick: str, text: str, action: bool) -> str:
    """A message line as clients see it; ``text`` already escaped."""
    return f"* {nick} {text}\n" if action else f"<{nick}> {text}\n"


def _clean(text: str) -> str:
    """Text from another server, safe to show: no lone surrogates (which have
    no UTF-8) and no control characters."""
    return escape_controls(text.encode("utf-8", "replace").decode("utf-8"))
