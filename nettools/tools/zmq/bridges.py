"""Bridges between ZeroMQ and clients that do not speak it: TCP line clients
(``TcpBridge``) and websockets (``WsBridge``).

Both fan messages from one SUB socket out to every client through each
client's ``Outbox``: a client that stops reading misses messages (and is told
how many once it catches up) but never delays the others, and one whose queue
stays full for ``slow_timeout`` is disconnected.

TCP (``TcpBridge``): every line a client sends (without its line ending) is
sent as a one-frame message on the ``out`` socket (PUB or PUSH; a PUSH with no
peer, or a full one, makes that client wait).  Every message from ``sub``
reaches every client as one line: its frames joined by a space, CR and LF
inside shown as spaces.  Notices from the bridge start with ``*** ``.

Websockets (``WsBridge``), one JSON object per text message::

    browser -> bridge   {"subscribe": "TOPIC"}     ("" subscribes to everything)
                        {"unsubscribe": "TOPIC"}
                        {"publish": {"topic": "TOPIC", "data": ANY}}
    bridge -> browser   {"topic": "TOPIC", "data": ANY}
                        {"subscribed": "TOPIC"} / {"unsubscribed": "TOPIC"}
                        {"error": "WHY"}
                        {"dropped": N}   (N messages missed while reading slowly)

On the ZeroMQ side a message is two frames, the topic and the data as JSON
(``publish`` sends exactly that).  Topics match by prefix, as ZeroMQ's
subscriptions do.  Data that is not JSON arrives as a string (invalid UTF-8 as
U+FFFD); a one-frame message arrives with ``"data": null`` and the frame as its
topic; frames after the second are dropped.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...green import socket, zmq
from ...kernel.greenthread import GreenThread, kill, sleep, spawn
from ...net import Server, shutdown_quietly
from ...web.websocket import WebSocket, WebSocketWSGI
from ..plumbing.lines import LineTooLong, recv_lines
from ..plumbing.outbox import DEFAULT_LINGER, Outbox
from ..plumbing.service import Stats

__all__ = ["BridgeStats", "TcpBridge", "WsBridge"]

log = logging.getLogger("nettools.zmq")

#: Messages fanned out before the fan-out lets the writers run.
FANOUT_BATCH = 64
#: Longest topic a websocket client may subscribe to, in bytes.
TOPIC_MAX = 1024


@dataclass
class BridgeStats(Stats):
    """``Stats`` plus what a bridge counts."""

    to_zmq: int = 0  # messages sent to ZeroMQ
    from_zmq: int = 0  # messages received from ZeroMQ
    dropped: int = 0  # deliveries skipped because a client's queue was full
    slow_disconnects: int = 0


class _Fanout:
    """What both bridges share: clients with outboxes, and the loop that reads
    ``sub`` and hands each message to the clients that want it."""

    def __init__(
        self,
        sub: Any,
        queue_size: int,
        slow_timeout: float | None,
        send_buffer: int,
        stats: BridgeStats,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.sub = sub
        self.queue_size = queue_size
        self.slow_timeout = slow_timeout
        self.send_buffer = send_buffer
        self.stats = stats
        self._loop: GreenThread | None = None
        self._stopping = False

    def _start_fanout(self) -> None:
        if self.sub is not None and self._loop is None:
            self._loop = spawn(self._fan_out)

    def _stop_fanout(self) -> None:
        self._stopping = True
        if self._loop is not None:
            kill(self._loop)

    def _set_send_buffer(self, sock: Any) -> None:
        # Small, so a backlog shows up in the outbox instead of hiding in the
        # socket buffer.
        if self.send_buffer and sock.family != socket.AF_UNIX:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            except OSError:
                pass  # the peer may already have gone

    def _outbox(self, send: Any, conn: Any, notice: Any, *, end_connection: bool) -> Outbox:
        """A started outbox for a client on ``conn``; ``notice(missed)`` is what
        tells it that it missed messages.  With ``end_connection`` the
        connection ends when the writer does (its reader then sees EOF)."""
        stats = self.stats

        def on_slow() -> None:
            stats.slow_disconnects += 1
            log.info("zmq bridge: disconnecting a client: too slow")
            shutdown_quietly(conn)  # wakes its reader (EOF) and its writer (EPIPE)

        def on_caught_up(missed: int) -> None:
            box.put(notice(missed))

        box = Outbox(
            send, queue_size=self.queue_size, slow_timeout=self.slow_timeout,
            on_slow=on_slow, on_caught_up=on_caught_up,
            on_end=(lambda clean: shutdown_quietly(conn)) if end_connection else None,
        )
        return box.start()

    def _fan_out(self) -> None:
        recv, stats = self.sub.recv_multipart, self.stats
        n = 0
        while True:
            frames = recv()
            stats.from_zmq += 1
            for box, item in self._deliveries(frames):
                if not box.put(item) and not box.closing:
                    stats.dropped += 1
            n += 1
            if n % FANOUT_BATCH == 0:
                sleep(0)  # let the writers (and everyone else) run

    def _deliveries(self, frames: list[bytes]) -> Iterator[tuple[Outbox, Any]]:
        raise NotImplementedError


# ---------------------------------------------------------------- TCP


class TcpBridge(_Fanout):
    """TCP line clients on a listening green socket <-> ZeroMQ (see the module doc).

    ``out``: a green PUB or PUSH socket the clients' lines go to (None: lines
    are read and discarded).  ``sub``: a green SUB socket (subscribed by the
    caller) whose messages go to every client (None: nothing goes out).
    ``max_line``: longest line in bytes; a longer one disconnects that client.
    ``idle_timeout``, ``queue_size``, ``slow_timeout``, ``send_buffer``: as in
    ``ChatServer``.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        out: Any = None,
        sub: Any = None,
        max_line: int = 4096,
        max_conns: int = 10_000,
        idle_timeout: float | None = None,
        queue_size: int = 256,
        slow_timeout: float | None = 5.0,
        send_buffer: int = 65536,
        stats: BridgeStats | None = None,
    ) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        super().__init__(sub, queue_size, slow_timeout, send_buffer, stats or BridgeStats())
        self.out = out
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.server = Server(sock, self._handle, max_conns, name="zmq-tcp")
        self._clients: dict[Outbox, None] = {}  # insertion-ordered set

    @property
    def address(self) -> Any:
        return self.server.address

    def start(self) -> TcpBridge:
        self.server.start()
        self._start_fanout()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting and reading ZeroMQ, flush the clients' queues (for up
        to ``timeout`` seconds), then close what is left."""
        self._stop_fanout()
        for box in list(self._clients):
            box.close()  # its writer flushes, then ends the connection
        self.server.stop(timeout)

    def _deliveries(self, frames: list[bytes]) -> Iterator[tuple[Outbox, Any]]:
        line = b" ".join(frames).replace(b"\r", b" ").replace(b"\n", b" ") + b"\n"
        for box in self._clients:
            yield box, line

    def _handle(self, conn: socket.socket, addr: Any) -> None:
        if self._stopping:
            return
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        conn.settimeout(self.idle_timeout)
        self._set_send_buffer(conn)

        def send(batch: list[bytes]) -> None:
            data = b"".join(batch)
            conn.sendall(data)
            stats.bytes_out += len(data)

        box = self._outbox(send, conn, _tcp_notice, end_connection=True)
        self._clients[box] = None
        try:
            out = self.out
            for line in recv_lines(conn, self.max_line, stats):
                if out is not None and not self._stopping:
                    out.send(line)
                    stats.to_zmq += 1
        except LineTooLong:
            stats.errors += 1
            box.put(f"*** Line longer than {self.max_line} bytes; disconnecting\n".encode())
        except TimeoutError:
            box.put(b"*** Disconnected: idle for too long\n")
        except OSError as exc:
            if not (box.abandoned or self._stopping):
                stats.errors += 1
                log.debug("zmq tcp: connection error: %s", exc)
        finally:
            self._clients.pop(box, None)
            try:
                # Let the writer flush the last lines, but never wait long for a
                # client that does not read.
                box.finish(self.slow_timeout or DEFAULT_LINGER)
            finally:
                stats.active -= 1


def _tcp_notice(missed: int) -> bytes:
    return f"*** You read too slowly: {missed} message(s) were not delivered\n".encode()


# ---------------------------------------------------------------- websockets


class _WsClient:
    __slots__ = ("ws", "box", "topics")

    def __init__(self, ws: WebSocket, box: Outbox) -> None:
        self.ws = ws
        self.box = box
        self.topics: set[bytes] = set()


class WsBridge(_Fanout):
    """Websocket clients <-> ZeroMQ PUB/SUB (see the module doc for the protocol).

    ``app`` is the WSGI app to serve (with ``nettools.web.wsgi``).  ``pub``: a
    green PUB socket for what clients publish (None: publishing is refused).
    ``sub``: a green SUB socket the bridge subscribes as clients ask (None:
    subscribing is refused).  ``max_message``: largest message in bytes either
    way (from clients: the connection fails with 1009; from ZeroMQ: the message
    is not delivered; give ``sub`` ZMQ_MAXMSGSIZE too).  ``max_subscriptions``: topics per client.
    ``queue_size``, ``slow_timeout``, ``send_buffer``: the slow-client policy,
    as in ``TcpBridge``.  ``ws_options``
    go to ``WebSocketWSGI`` (``origins``, ``ping_interval``, ...).
    """

    def __init__(
        self,
        *,
        pub: Any = None,
        sub: Any = None,
        max_message: int = 65536,
        max_subscriptions: int = 64,
        queue_size: int = 256,
        slow_timeout: float | None = 5.0,
        send_buffer: int = 65536,
        stats: BridgeStats | None = None,
        **ws_options: Any,
    ) -> None:
        super().__init__(sub, queue_size, slow_timeout, send_buffer, stats or BridgeStats())
        self.pub = pub
        self.max_message = max_message
        self.max_subscriptions = max_subscriptions
        self.app = WebSocketWSGI(self._handle, max_message_size=max_message, **ws_options)
        self._clients: dict[_WsClient, None] = {}
        self._topics: Counter[bytes] = Counter()  # topic -> clients subscribed to it

    def start(self) -> WsBridge:
        self._start_fanout()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading ZeroMQ; the WSGI server's stop ends the connections."""
        self._stop_fanout()

    def _deliveries(self, frames: list[bytes]) -> Iterator[tuple[Outbox, Any]]:
        topic = frames[0]
        text: str | None = None
        for client in self._clients:
            if any(topic.startswith(t) for t in client.topics):
                if text is None:
                    text = _browser_message(frames)
                    if len(text) > self.max_message:
                        self.stats.errors += 1
                        return
                yield client.box, text

    def _handle(self, ws: WebSocket) -> None:
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        self._set_send_buffer(ws.socket)

        def send(batch: list[str]) -> None:
            for text in batch:
                ws.send(text)
                stats.bytes_out += len(text)

        # The websocket ends its connection itself, with a closing handshake.
        client = _WsClient(ws, self._outbox(send, ws.socket, _ws_notice, end_connection=False))
        self._clients[client] = None
        try:
            for message in ws:
                stats.bytes_in += len(message)
                reply = self._command(client, message)
                if reply is not None:
                    client.box.put(json.dumps(reply))
        finally:
            self._clients.pop(client, None)
            for topic in client.topics:
                self._unsubscribe(topic)
            try:
                client.box.finish(self.slow_timeout or DEFAULT_LINGER)
            finally:
                stats.active -= 1

    def _command(self, client: _WsClient, message: str | bytes) -> dict | None:
        """Carry out one request; the reply to send, if any."""
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if not isinstance(request, dict) or len(request) != 1:
            return _error('expected one JSON object: {"subscribe": T}, {"unsubscribe": T} '
                          'or {"publish": {"topic": T, "data": D}}')
        (verb, arg), = request.items()
        if verb in ("subscribe", "unsubscribe"):
            if not isinstance(arg, str) or len(arg.encode()) > TOPIC_MAX:
                return _error(f"{verb}: the topic must be a string of at most {TOPIC_MAX} bytes")
            if self.sub is None:
                return _error("this bridge has no SUB socket")
            topic = arg.encode()
            if verb == "subscribe":
                if topic not in client.topics:
                    if len(client.topics) >= self.max_subscriptions:
                        return _error(f"at most {self.max_subscriptions} subscriptions")
                    client.topics.add(topic)
                    self._subscribe(topic)
                return {"subscribed": arg}
            if topic in client.topics:
                client.topics.discard(topic)
                self._unsubscribe(topic)
            return {"unsubscribed": arg}
        if verb == "publish":
            if not isinstance(arg, dict) or not isinstance(arg.get("topic"), str):
                return _error('publish: expected {"topic": STRING, "data": ANY}')
            if self.pub is None:
                return _error("this bridge has no PUB socket")
            data = json.dumps(arg.get("data"), separators=(",", ":")).encode()
            self.pub.send_multipart([arg["topic"].encode(), data])
            self.stats.to_zmq += 1
            return None
        return _error(f"unknown request {verb[:40]!r}")

    def _subscribe(self, topic: bytes) -> None:
        self._topics[topic] += 1
        if self._topics[topic] == 1:
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)

    def _unsubscribe(self, topic: bytes) -> None:
        self._topics[topic] -= 1
        if self._topics[topic] <= 0:
            del self._topics[topic]
            self.sub.setsockopt(zmq.UNSUBSCRIBE, topic)


def _error(text: str) -> dict:
    return {"error": text}


def _ws_notice(missed: int) -> str:
    return json.dumps({"dropped": missed})


def _decode(frame: bytes) -> Any:
    """A frame's data: its JSON value, else its text."""
    text = frame.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _browser_message(frames: list[bytes]) -> str:
    topic = frames[0].decode("utf-8", "replace")
    data = _decode(frames[1]) if len(frames) > 1 else None
    return json.dumps({"topic": topic, "data": data})
