"""A browser chat over websockets: nicknames, rooms, history, presence.

``WSChatServer`` runs on nettools' WSGI server and serves

* ``GET /``: the chat page, one self-contained file (``static/wschat.html``:
  no CDN, works offline) that reconnects by itself after a dropped connection;
* ``GET /chat``: the websocket, speaking the JSON messages below;
* ``GET /healthz``: ``{"status": "ok", "clients": N, "rooms": N}``, and on a
  bus ``"bus": {"connected": BOOL, "servers": N}`` (N: the other servers).

Message schema (version 1)
--------------------------

Every message is one JSON object in one text frame, with a string ``"type"``.
Times are Unix seconds (floats).  Client to server:

``{"type": "join", "nick": NICK, "room": ROOM}``
    The first message of a connection; ``nick`` is required there and must be
    free (nicknames are unique, case-insensitively).  Later joins move the
    client to ``ROOM`` (created on first use; ``"room"`` defaults to
    ``"lobby"``).  Names are 1-32 letters, digits or ``_-.[]{}|^`'`` in one
    script, taken in NFKC form; a look-alike of a nickname in use is taken
    too (``nettools.tools.chat.names``).
``{"type": "say", "text": TEXT}``
    Say ``TEXT`` (at most ``max_message`` characters) in the current room;
    invisible characters in it (bidi controls...) reach others written out as
    ``<U+202E>`` (``nettools.tools.chat.safetext``).
``{"type": "rooms"}``
    Ask for the list of rooms.
``{"type": "users"}``
    Ask for the users of the current room.

Server to client:

``{"type": "welcome", "nick": NICK, "room": ROOM, "users": [NICK...], "limits": {...}}``
    A join succeeded (first or later).  ``limits``: ``max_message``, ``rate``,
    ``burst``, ``history``, ``name_max``.  Followed by ``history``.
``{"type": "history", "room": ROOM, "messages": [MESSAGE...]}``
    The last ``history`` messages of the room, oldest first.
``{"type": "message", "id": N, "room": ROOM, "nick": NICK, "text": TEXT, "time": T}``
    Someone (the receiver too) said something; ``id`` grows with every message.
    A ``/me`` action from a line chat user on the bus adds ``"action": true``.
``{"type": "joined", "room": ROOM, "nick": NICK, "time": T}``
    Someone else entered the room.
``{"type": "left", "room": ROOM, "nick": NICK, "reason": WHY, "time": T}``
    Someone else left the room; ``WHY`` is ``"left"``, ``"moved"`` (with
    ``"to": ROOM``), ``"idle"``, ``"too slow"`` or ``"flooding"``; for a user
    of another server on the bus also ``"server gone"``, ``"server stopped"``
    or that server's own short text (e.g. ``"quit: ..."``).
``{"type": "renamed", "room": ROOM, "nick": NEW, "old": OLD, "time": T}``
    Someone in the room changed nickname (a line chat user on the bus, or a
    user who lost a nickname race between two servers -- the receiver too,
    when ``old`` was its own nickname).
``{"type": "users", "room": ROOM, "users": [NICK...]}``
    The answer to ``users``.
``{"type": "rooms", "rooms": [{"name": ROOM, "users": N}...]}``
    The answer to ``rooms``: every room with someone in it, and the lobby.
``{"type": "missed", "count": N}``
    N messages were not delivered to this client because it read too slowly.
``{"type": "error", "code": CODE, "message": TEXT}``
    A request was refused; the connection stays open.  ``CODE`` is one of
    ``bad-message``, ``not-joined``, ``invalid-nick``, ``nick-taken``,
    ``nick-fixed``, ``invalid-room``, ``empty``, ``too-long``, ``rate-limited``
    (with ``"retry_after": SECONDS``), ``idle``.

Close codes: 1000 normal; 1001 the server is stopping (the page reconnects);
1008 flooding (far more messages than the rate limit, refused ones included);
1009 a frame over the size limit; 1011 no answer to the keepalive ping.

Scaling out: with a ``bus`` (``nettools.tools.chat.bus``) several servers,
``nettools chat`` ones included, share rooms through a ZeroMQ forwarder: user
lists, history and notices span the servers, and nicknames are unique across
them.

Limits and fairness: the flood control of every chat
(``nettools.tools.chat.flood``): ``rate`` messages per second, bursts of
``burst``; a message beyond it gets a ``rate-limited`` error, and a client
that keeps flooding while limited is disconnected.  Slow
browsers never delay the others: the same policy as ``nettools chat``
(``nettools.tools.plumbing.outbox``): a bounded queue per client, drops it is told
about, and a disconnect after ``slow_timeout`` of being stuck.  Broadcasting
never waits, so everyone sees a room's messages in the same order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from ...green import socket
from ...green import ssl as _gssl
from ...kernel.greenthread import GreenletExit, sleep
from ...kernel.timeout import Timeout
from ...web.websocket import WebSocket, WebSocketWSGI
from ...web.wsgi import WSGIServer, plain_response
from ..plumbing.outbox import Outbox
from ..plumbing.service import Stats
from .flood import Verdict
from .metrics import END_REASONS
from .names import NAME_MAX, NAME_RULE, name_problem, normal_name, valid_name
from .rooms import DEFAULT_ROOM, ChatRooms, ChatStats, Member, Room

if TYPE_CHECKING:
    from .bus import ChatBus

__all__ = ["WSChatServer", "WSChatStats", "PROTOCOL_VERSION", "page"]

log = logging.getLogger("nettools.wschat")

PROTOCOL_VERSION = 1
# Bytes of frame a message of ``max_message`` characters may need: JSON
# escapes an astral character as two \\uXXXX escapes (12 bytes).
_FRAME_BYTES_PER_CHAR = 12
_FRAME_OVERHEAD = 4096


@dataclass
class WSChatStats(ChatStats):
    """``ChatStats`` plus what only the browser chat counts."""

    refused: int = 0  # requests answered with an error


def page() -> bytes:
    """The chat page (HTML with its CSS and JavaScript inline)."""
    return resources.files("nettools.tools.chat").joinpath("static", "wschat.html").read_bytes()


def _content_security_policy(html: bytes) -> str:
    """Only the page's own script may run: injected markup stays inert even if
    it ever reached the DOM as HTML."""
    scripts = re.findall(rb"<script>(.*?)</script>", html, re.S)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts
    )
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _encode(obj: dict) -> str:
    # ASCII-only: a lone surrogate a client sent in \\u escapes stays escaped.
    return json.dumps(obj, separators=(",", ":"))


class _Client(Member):
    __slots__ = ("ws",)

    def __init__(self, ws: WebSocket, outbox: Outbox) -> None:
        super().__init__(outbox)
        self.ws = ws


class _Refused(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.reply = {"type": "error", "code": code, "message": message, **extra}


class WSChatServer(ChatRooms):
    """The browser chat on a listening green socket.

    ``history``: messages of a room replayed on join.  ``max_message``:
    longest message in characters (a longer one is refused).  ``rate`` and
    ``burst``: each client's flood control (``nettools.tools.chat.flood``).
    ``queue_size``, ``slow_timeout``, ``send_buffer``: the slow-client policy
    (see ``nettools.tools.plumbing.outbox``).
    ``idle_timeout``: disconnect a client that sends nothing this long (None:
    never).  ``ping_interval``/``ping_timeout``: websocket keepalive.
    ``origins``: accepted ``Origin`` headers (None: any).  ``ssl_context``:
    serve HTTPS/WSS.  ``access_log``: a file-like or logger for HTTP requests.
    ``bus``: a ``ChatBus`` to share rooms with other servers (started and
    stopped with this server).
    """

    _ECHO_OWN = True
    _label = "wschat"
    _log = log

    def __init__(
        self,
        sock: socket.socket,
        *,
        history: int = 50,
        max_message: int = 2000,
        max_conns: int = 10_000,
        rate: float = 5.0,
        burst: int = 10,
        queue_size: int = 256,
        slow_timeout: float | None = 5.0,
        send_buffer: int = 65536,
        idle_timeout: float | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        origins: list[str] | None = None,
        ssl_context: Any = None,
        access_log: Any = None,
        stats: WSChatStats | Stats | None = None,
        bus: ChatBus | None = None,
    ) -> None:
        if max_message < 1:
            raise ValueError("max_message must be at least 1")
        super().__init__(
            history=history, rate=rate, burst=burst, queue_size=queue_size,
            slow_timeout=slow_timeout, send_buffer=send_buffer,
            stats=stats if stats is not None else WSChatStats(), bus=bus,
        )
        self.max_message = max_message
        self.idle_timeout = idle_timeout
        self.limits = {
            "max_message": max_message,
            "rate": rate,
            "burst": burst,
            "history": self.history,
            "name_max": NAME_MAX,
        }
        self._seq = 0
        self._page = page()
        self._page_headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(self._page))),
            ("Cache-Control", "no-cache"),
            ("Content-Security-Policy", _content_security_policy(self._page)),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]
        self._websocket = WebSocketWSGI(
            self._serve,
            max_message_size=max_message * _FRAME_BYTES_PER_CHAR + _FRAME_OVERHEAD,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            origins=origins,
        )
        self.wsgi = WSGIServer(
            sock,
            self.app,
            max_size=max_conns,
            log=access_log,
            log_output=access_log is not None,
            ssl_context=ssl_context,
            name="wschat",
        )

    @classmethod
    def tls_context(cls, certfile: str, keyfile: str | None = None) -> Any:
        """A server TLS context for ``ssl_context`` from PEM files."""
        ctx = _gssl.SSLContext(_gssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        return ctx

    @property
    def address(self) -> Any:
        return self.wsgi.address

    def start(self) -> WSChatServer:
        self._start_bus()
        self.wsgi.start()
        return self

    def serve_forever(self) -> None:
        self.wsgi.serve_forever()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting; open websockets get close 1001 (going away) as soon
        as they are idle; wait up to ``timeout`` for them, then cut what is left."""
        self._begin_stop()
        self.wsgi.stop(timeout)

    # ------------------------------------------------------------ HTTP

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """The WSGI app: the page, the websocket and the health check."""
        path = environ.get("PATH_INFO", "")
        if path == "/chat":
            return self._websocket(environ, start_response)
        if path in ("/", "/index.html", "/healthz"):
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return plain_response(
                    start_response, "405 Method Not Allowed", "Use GET.\n", [("Allow", "GET, HEAD")]
                )
            if path == "/healthz":
                health: dict[str, Any] = {
                    "status": "stopping" if self._stopping else "ok",
                    "clients": len(self._clients),
                    "rooms": len(self.rooms),
                }
                if self.bus is not None:
                    health["bus"] = {"connected": self.bus.connected,
                                     "servers": self.bus.stats.servers}
                body = json.dumps(health).encode() + b"\n"
                start_response("200 OK", [("Content-Type", "application/json"),
                                          ("Cache-Control", "no-store")])
                return [body]
            start_response("200 OK", list(self._page_headers))
            return [self._page]
        return plain_response(start_response, "404 Not Found", "Not found.\n")

    # ------------------------------------------------------------ a client

    def _serve(self, ws: WebSocket) -> None:
        """One websocket connection, from its first message to its end."""
        if self._stopping:
            ws.close(1001, "server shutting down")
            return
        stats = self.stats
        self._set_send_buffer(ws.socket)
        client = self._new_client(ws)
        close: tuple[int, str] | None = None
        reason = "left"
        killed = False
        try:
            while True:
                timer = Timeout(self.idle_timeout)
                try:
                    message = ws.wait()
                except Timeout as exc:
                    if exc is not timer:
                        raise
                    self._reply(client, {"type": "error", "code": "idle", "message":
                                f"Disconnected: nothing sent for {self.idle_timeout:g}s"})
                    close, reason = (1000, "idle"), "idle"
                    break
                finally:
                    timer.cancel()
                if message is None:
                    break
                if self._stopping or client.gone:
                    continue  # on its way out: read until the connection ends
                stats.bytes_in += len(message.encode() if isinstance(message, str) else message)
                verdict = self._screen(client)
                if verdict is Verdict.FLOODING:
                    close, reason = (1008, "too many messages"), "flooding"
                    break
                if verdict is Verdict.LIMITED:
                    self._refuse(client, _Refused(
                        "rate-limited",
                        f"Slow down: at most {self.rate:g} messages a second",
                        retry_after=round(client.flood.retry_after(), 3),
                    ))
                    continue
                try:
                    self._dispatch(client, message)
                except _Refused as exc:
                    self._refuse(client, exc)
                # wait() takes what is already received without waiting, so a
                # client that floods could otherwise keep the hub to itself.
                sleep(0)
        except GreenletExit:
            killed = True  # a stopping server ran out of drain time
            raise
        finally:
            if not (killed or client.gone or self._stopping):
                self._ended(client, END_REASONS.get(reason, "client"))
            try:
                self._depart(client, reason)
                # Let the writer flush the last messages (an error, say), but
                # never wait long for a client that does not read.
                if not killed:
                    if not self._flush(client):
                        ws.abort()  # its writer was stopped mid-send: no frame may follow
                    elif close is not None:
                        ws.close(*close)
            finally:
                client.outbox.kill()
                stats.active -= 1

    def _new_client(self, ws: WebSocket) -> _Client:
        stats = self.stats

        def send(items: list[str]) -> None:
            for item in items:
                ws.send(item)
                stats.bytes_out += len(item)

        def on_end(clean: bool) -> None:
            if not clean:
                ws.abort()  # a failed send: wake the reader so the client is cleaned up

        return self._admit(lambda outbox: _Client(ws, outbox), send, on_end)

    def _ended(self, client: _Client, reason: str) -> None:
        self.wsgi.server.end_reason(client.ws.socket, reason)

    def _cut(self, client: _Client) -> None:
        client.ws.abort()  # no close frame can pass a peer that does not read

    # ------------------------------------------------------------ requests

    def _dispatch(self, client: _Client, raw: str | bytes) -> None:
        if not isinstance(raw, str):
            raise _Refused("bad-message", "Send JSON in text frames")
        try:
            msg = json.loads(raw)
        except (ValueError, RecursionError):
            raise _Refused("bad-message", "Not valid JSON") from None
        kind = msg.get("type") if isinstance(msg, dict) else None
        handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise _Refused(
                "bad-message", 'Expected an object with "type": join, say, rooms or users'
            )
        if client.nick is None and kind != "join":
            raise _Refused("not-joined", 'Send {"type": "join", "nick": ...} first')
        handler(self, client, msg)

    def _on_join(self, client: _Client, msg: dict) -> None:
        name = msg.get("room", DEFAULT_ROOM)
        if isinstance(name, str):
            name = normal_name(name).removeprefix("#")
        if not isinstance(name, str) or not valid_name(name):
            raise _Refused("invalid-room", f"Room names are {NAME_RULE}")
        nick = msg.get("nick")
        if isinstance(nick, str):
            nick = normal_name(nick)
        if client.nick is None:
            problem = name_problem(nick) if isinstance(nick, str) else f"use {NAME_RULE}"
            if problem:
                raise _Refused("invalid-nick", f"Invalid nickname: {problem}")
            if self._taken_here(nick) or self._taken_elsewhere(nick):
                raise _Refused("nick-taken", f"The nickname {nick} is taken")
            self._claim(client, nick)
        elif nick is not None and nick != client.nick:
            raise _Refused("nick-fixed", f"You are {client.nick}; reconnect to change it")
        room = self._room(name)
        if client.room is room:
            self._welcome(client, room)  # a repeated join just gets the room again
            return
        if client.room is not None:
            self._leave(client, "moved", to=room.name)
        self._join(client, room)

    def _on_say(self, client: _Client, msg: dict) -> None:
        text = msg.get("text")
        if not isinstance(text, str):
            raise _Refused("bad-message", 'A "say" needs a "text" string')
        if not text.strip():
            raise _Refused("empty", "Nothing to say")
        if len(text) > self.max_message:
            raise _Refused("too-long", f"Messages are at most {self.max_message} characters")
        self._say(client, text)

    def _on_rooms(self, client: _Client, msg: dict) -> None:
        self._reply(client, {"type": "rooms", "rooms": [
            {"name": n, "users": c} for n, c in self._room_counts()
        ]})

    def _on_users(self, client: _Client, msg: dict) -> None:
        room = client.room
        self._reply(client, {"type": "users", "room": room.name, "users": self._nicks_in(room)})

    _HANDLERS = {"join": _on_join, "say": _on_say, "rooms": _on_rooms, "users": _on_users}

    # ------------------------------------------------------------ rooms

    def _welcome(self, client: _Client, room: Room) -> None:
        self._reply(client, {
            "type": "welcome", "nick": client.nick, "room": room.name,
            "users": self._nicks_in(room), "limits": self.limits, "version": PROTOCOL_VERSION,
        })
        self._reply(client, {"type": "history", "room": room.name, "messages": list(room.history)})

    def _join(self, client: _Client, room: Room) -> None:
        # The others learn of it from "joined": no user list goes to everyone,
        # which would cost the square of the room's size in a busy room.
        self._enter(client, room)
        self._welcome(client, room)

    # ------------------------------------------------------------ output

    def _reply(self, client: _Client, obj: dict) -> None:
        self._put(client, _encode(obj))

    def _refuse(self, client: _Client, exc: _Refused) -> None:
        self._count("refused")
        self._reply(client, exc.reply)

    # ------------------------------------------------------------ rendering

    def _encode(self, item: dict) -> str:
        return _encode(item)

    def _said_item(self, room: Room, nick: str, text: str, ts: float, action: bool) -> dict:
        self._seq += 1
        message = {
            "type": "message", "id": self._seq, "room": room.name, "nick": nick,
            "text": text, "time": round(ts, 3),
        }
        if action:
            message["action"] = True
        return message

    def _missed_item(self, missed: int) -> dict:
        return {"type": "missed", "count": missed}

    def _joined_item(self, room: Room, nick: str, ts: float) -> dict:
        return {"type": "joined", "room": room.name, "nick": nick, "time": round(ts, 3)}

    def _left_item(self, room: Room, nick: str, reason: str, to: str | None, ts: float) -> dict:
        extra = {"to": to} if reason == "moved" and to else {}
        return {
            "type": "left", "room": room.name, "nick": nick, "reason": reason or "left",
            **extra, "time": round(ts, 3),
        }

    def _renamed_item(self, room: Room, old: str, new: str, ts: float) -> dict:
        return {"type": "renamed", "room": room.name, "nick": new, "old": old,
                "time": round(ts, 3)}
