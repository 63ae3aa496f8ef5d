"""Websocket clients (browsers) <-> ZeroMQ PUB/SUB (``nettools zmq ws``).

One JSON object per text message::

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
topic; frames after the second are dropped.  Slow clients are handled as in
``fanout``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from ...green import zmq
from ...web.websocket import WebSocket, WebSocketWSGI
from ...web.wsgi import WSGIServer
from ..plumbing.outbox import DEFAULT_LINGER, Outbox
from .fanout import BridgeStats, Fanout

__all__ = ["TOPIC_MAX", "WsBridge"]

#: Longest topic a websocket client may subscribe to, in bytes.
TOPIC_MAX = 1024


class _WsClient:
    __slots__ = ("ws", "box", "topics")

    def __init__(self, ws: WebSocket, box: Outbox) -> None:
        self.ws = ws
        self.box = box
        self.topics: set[bytes] = set()


class WsBridge:
    """Websocket clients <-> ZeroMQ PUB/SUB (see the module doc for the protocol).

    ``pub``: a green PUB socket for what clients publish (None: publishing is
    refused).  ``sub``: a green SUB socket the bridge subscribes as clients ask
    (None: subscribing is refused).  ``max_message``: largest message in bytes
    either way (from clients: the connection fails with 1009; from ZeroMQ, as
    received or as the JSON a client would get: the message is dropped and
    counted in ``oversized``, and the feed goes on).
    ``max_subscriptions``: topics per client.  ``queue_size``, ``slow_timeout``,
    ``send_buffer``: the slow-client policy, as in ``TcpBridge``.  ``ws_options``
    go to ``WebSocketWSGI`` (``origins``, ``ping_interval``, ...).

    ``serve(sock)`` serves it on a listening socket; or ``start()`` it and mount
    ``app``, its WSGI app, in a server of your own.
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
        self.stats = stats or BridgeStats()
        self.fanout = Fanout(
            sub, self._deliveries, max_message=max_message, queue_size=queue_size,
            slow_timeout=slow_timeout, send_buffer=send_buffer, stats=self.stats,
        )  # fmt: skip
        self.pub = pub
        self.max_message = max_message
        self.max_subscriptions = max_subscriptions
        self.app = WebSocketWSGI(self._handle, max_message_size=max_message, **ws_options)
        self.server: WSGIServer | None = None
        self._clients: dict[_WsClient, None] = {}
        self._topics: Counter[bytes] = Counter()  # topic -> clients subscribed to it

    def start(self) -> WsBridge:
        """Start reading ZeroMQ (``app`` then serves clients wherever it is mounted)."""
        self.fanout.start()
        return self

    def serve(
        self, sock: Any, *, max_conns: int = 10_000, ssl_context: Any = None
    ) -> Callable[[float | None], None]:
        """Start, and serve ``app`` on the listening green socket ``sock`` (TLS
        with ``ssl_context``) to at most ``max_conns`` clients at once; returns
        the stop function (``stop``)."""
        self.server = WSGIServer(
            sock, self.app, max_size=max_conns, log_output=False, ssl_context=ssl_context,
            name="zmq-ws",
        )  # fmt: skip
        self.fanout.end_reason = self.server.server.end_reason
        self.start()
        self.server.start()
        return self.stop

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading ZeroMQ; then, if serving, stop the server, which lets the
        clients finish for up to ``timeout`` seconds and ends their connections."""
        self.fanout.stop()
        if self.server is not None:
            self.server.stop(timeout)

    def _deliveries(self, frames: list[bytes]) -> Iterator[tuple[Outbox, Any]]:
        topic = frames[0]
        text: str | None = None
        for client in self._clients:
            if any(topic.startswith(t) for t in client.topics):
                if text is None:
                    text = _browser_message(frames)
                    if len(text) > self.max_message:
                        self.fanout.cap.drop(f"{len(text)} bytes as JSON")
                        return
                yield client.box, text

    def _handle(self, ws: WebSocket) -> None:
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        self.fanout.set_send_buffer(ws.socket)

        def send(batch: list[str]) -> None:
            for text in batch:
                ws.send(text)
                stats.bytes_out += len(text)

        # The websocket ends its connection itself, with a closing handshake.
        client = _WsClient(ws, self.fanout.outbox(send, ws.socket, _notice, end_connection=False))
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
                client.box.finish(self.fanout.slow_timeout or DEFAULT_LINGER)
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
            if self.fanout.sub is None:
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
            self.fanout.sub.setsockopt(zmq.SUBSCRIBE, topic)

    def _unsubscribe(self, topic: bytes) -> None:
        self._topics[topic] -= 1
        if self._topics[topic] <= 0:
            del self._topics[topic]
            self.fanout.sub.setsockopt(zmq.UNSUBSCRIBE, topic)


def _error(text: str) -> dict:
    return {"error": text}


def _notice(missed: int) -> str:
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
