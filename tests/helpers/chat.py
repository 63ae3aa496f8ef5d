"""Chat clients for the chat servers' tests: the line chat's and the browser chat's.

Each client reads what its server sends in order, so a line (or message) a
client should *not* get is checked without sleeping: the client asks for
something and the next line must be the answer (``sync``, ``users``).
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

#: Seconds any single client-side wait may take before the test fails.
LINE_TIMEOUT = 20
WS_TIMEOUT = 10


class LineClient:
    """A line client (``nettools chat`` and friends) on a blocking socket."""

    def __init__(self, addr, *, rcvbuf: int | None = None, family=socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(LINE_TIMEOUT)
        if rcvbuf is not None:  # before connecting, so the window starts small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(addr)
        self.file = self.sock.makefile("rb")
        self.nick = ""

    @property
    def name(self) -> str:
        """``host:port`` of this end, as servers that name clients by address show it."""
        return "{}:{}".format(*self.sock.getsockname())

    def send(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.sock.sendall(data + b"\n")

    def readline(self) -> str:
        """The next line, without its newline; fails if the connection closed."""
        line = self.file.readline()
        assert line.endswith(b"\n"), f"connection closed (got {line!r})"
        return line[:-1].decode()

    def expect(self, wanted: str) -> None:
        assert self.readline() == wanted

    def skip_to(self, wanted: str, limit: int = 1000) -> None:
        for _ in range(limit):
            if self.readline() == wanted:
                return
        raise AssertionError(f"{wanted!r} not seen")

    def rest(self) -> bytes:
        """Everything up to EOF."""
        return self.file.read()

    def join(self, nick: str, others: tuple[str, ...] = ()) -> None:
        """Answer ``nettools chat``'s nickname prompt and read the lines that greet a newcomer."""
        self.expect("*** Welcome to nettools chat! Choose a nickname:")
        self.send(nick)
        self.expect(f"*** Hello, {nick}! Type /help for the commands.")
        here = ", ".join(sorted(others, key=str.casefold))
        self.expect(f"*** You are in lobby, {'with ' + here if others else 'alone'}")
        self.nick = nick

    def sync(self) -> None:
        """Return once ``nettools chat`` has handled every line this client sent."""
        self.send("/rooms")
        line = self.readline()
        assert line.startswith("*** Rooms: "), line

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class WSClient:
    """A ``nettools wschat`` client on the websockets library's sync client."""

    def __init__(self, url: str, **kw: Any) -> None:
        kw.setdefault("open_timeout", WS_TIMEOUT)
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(url, proxy=None, **kw))
        self.nick = ""

    def send(self, **obj: Any) -> None:
        self.ws.send(json.dumps(obj))

    def recv(self) -> dict:
        return json.loads(self.ws.recv(timeout=WS_TIMEOUT))

    def expect(self, kind: str, **fields: Any) -> dict:
        msg = self.recv()
        assert msg["type"] == kind, msg
        for key, value in fields.items():
            assert msg[key] == value, (key, msg)
        return msg

    def join(self, nick: str, room: str = "lobby") -> tuple[dict, dict]:
        """Join and return ``(welcome, history)``."""
        self.send(type="join", nick=nick, room=room)
        welcome = self.expect("welcome", nick=nick, room=room)
        history = self.expect("history", room=room)
        self.nick = nick
        return welcome, history

    def users(self) -> list[str]:
        """The users of this client's room -- and proof that everything sent
        to it before has been received."""
        self.send(type="users")
        return self.expect("users")["users"]

    def closed(self) -> ConnectionClosed:
        """Read until the connection ends (bounded); the ConnectionClosed."""
        for _ in range(10_000):
            try:
                self.ws.recv(timeout=WS_TIMEOUT)
            except ConnectionClosed as exc:
                return exc
        raise AssertionError("the connection stayed open")

    def close(self) -> None:
        self._stack.close()
