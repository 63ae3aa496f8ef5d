"""``nettools.tools.zmq``'s bridges as a library: ``TcpBridge`` and ``WsBridge`` on this
thread's hub, with green pyzmq peers and green TCP clients on the same hub, and
the unmodified ``websockets`` client (its sync client, run in a pool thread).

Subscriptions reach a publisher some time after a subscriber connects, so a
test first publishes probes until one arrives (bounded in count), then checks
the messages that matter; each client gets its messages in order, so a
message that must not arrive is checked by the one that follows it.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field

import pytest
from helpers.green import settle
from helpers.zmq import PROBES, drain, first_delivery, peer, recv
from websockets.sync.client import connect as ws_connect

import nettools
from nettools import Event, Queue, Timeout, spawn, tpool
from nettools.green import socket as gsocket
from nettools.green import zmq
from nettools.kernel.queue import Empty
from nettools.tools.zmq.fanout import BridgeStats
from nettools.tools.zmq.tcpbridge import TcpBridge
from nettools.tools.zmq.wsbridge import WsBridge

pytestmark = pytest.mark.timeout(30)

LOCAL = "127.0.0.1"
IO_TIMEOUT = 10


def bound(ctx, kind: int, **options) -> tuple[zmq.Socket, str]:
    """A green ``kind`` socket bound to a free loopback port, and its endpoint."""
    sock = ctx.socket(kind)
    sock.linger = 0
    for name, value in options.items():
        setattr(sock, name, value)
    sock.bind("tcp://127.0.0.1:*")
    return sock, sock.getsockopt(zmq.LAST_ENDPOINT).decode()


# ----------------------------------------------------------------- TcpBridge


class LineClient:
    """A green TCP client of the bridge; a greenthread of its own queues each line it reads
    (None at the end)."""

    def __init__(self, address, rcvbuf: int | None = None, read: bool = True) -> None:
        self.sock = gsocket.socket()
        if rcvbuf is not None:  # before connecting, so the window starts small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.connect(address)
        self.lines: Queue = Queue()
        self._reader = spawn(self._read) if read else None

    def _read(self) -> None:
        try:
            for line in self.sock.makefile("rb"):
                self.lines.put(line.rstrip(b"\n"))
        except OSError:
            pass
        self.lines.put(None)

    def send(self, line: bytes) -> None:
        self.sock.sendall(line + b"\n")

    def next(self, timeout: float = IO_TIMEOUT) -> bytes | None:
        return self.lines.get(timeout=timeout)

    def skip_to(self, wanted: bytes) -> None:
        for _ in range(10 * PROBES):
            line = self.next()
            assert line is not None, "connection closed"
            if line == wanted:
                return
        raise AssertionError(f"never got {wanted!r}")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.kill()
        self.sock.close()


def sync_lines(publisher, clients: list[LineClient]) -> None:
    """Publish probes until every client got one, then a marker; on return each
    client has read everything up to the marker."""
    waiting = set(clients)
    for i in range(PROBES):
        publisher.send(b"probe %d" % i)
        for c in list(waiting):
            try:
                c.lines.get(timeout=0.01)
                waiting.discard(c)
            except Empty:
                pass
        if not waiting:
            break
    assert not waiting, f"{len(waiting)} client(s) got no probe"
    publisher.send(b"marker")
    for c in clients:
        c.skip_to(b"marker")


@pytest.fixture
def tcp_bridge(green_ctx):
    """``tcp_bridge(**options)``: a started ``TcpBridge`` on 127.0.0.1, port 0, whose
    ``out`` PUB and ``sub`` SUB (subscribed to everything) are bound on loopback;
    returns ``(bridge, out_endpoint, sub_endpoint)``.  Clients in ``.clients`` and
    the bridges are closed and stopped afterwards."""
    made: list[TcpBridge] = []
    clients: list[LineClient] = []

    def start(**options) -> tuple[TcpBridge, str, str]:
        out, out_url = bound(green_ctx, zmq.PUB)
        sub, sub_url = bound(green_ctx, zmq.SUB, sndhwm=0, rcvhwm=0)
        sub.subscribe(b"")
        made.append(TcpBridge(nettools.listen((LOCAL, 0)), out=out, sub=sub, **options).start())
        return made[-1], out_url, sub_url

    def client(bridge: TcpBridge, **kw) -> LineClient:
        clients.append(LineClient(bridge.address, **kw))
        return clients[-1]

    start.client = client
    yield start
    for c in clients:
        c.close()
    for bridge in made:
        bridge.stop(0)


def test_tcp_bridge_lines_go_out_as_messages(tcp_bridge, green_ctx):
    bridge, out_url, _ = tcp_bridge()
    clients = [tcp_bridge.client(bridge) for _ in range(3)]
    subscriber = peer(green_ctx, zmq.SUB, out_url)
    subscriber.subscribe(b"")
    first_delivery(lambda: clients[0].send(b"probe"), subscriber)
    drain(subscriber)
    for i, c in enumerate(clients):
        c.send(b"from client %d\r" % i)  # a CRLF ending is stripped too
    got = sorted(recv(subscriber)[0] for _ in clients)
    assert got == [b"from client %d" % i for i in range(3)]
    assert bridge.stats.to_zmq >= 4 and bridge.stats.connections == 3


def test_tcp_bridge_messages_reach_every_client_as_one_line(tcp_bridge, green_ctx):
    bridge, _, sub_url = tcp_bridge()
    clients = [tcp_bridge.client(bridge) for _ in range(3)]
    publisher = peer(green_ctx, zmq.PUB, sub_url, sndhwm=0)
    sync_lines(publisher, clients)
    publisher.send_multipart([b"news", b"hello world"])
    publisher.send(b"two\nlines\r")
    for c in clients:
        assert c.next() == b"news hello world"  # frames joined by a space
        assert c.next() == b"two lines "  # CR and LF inside shown as spaces
    assert bridge.stats.dropped == 0


def test_tcp_bridge_disconnects_a_client_whose_line_is_too_long(tcp_bridge, green_ctx):
    bridge, out_url, _ = tcp_bridge(max_line=16)
    bad, good = tcp_bridge.client(bridge), tcp_bridge.client(bridge)
    subscriber = peer(green_ctx, zmq.SUB, out_url)
    subscriber.subscribe(b"")
    bad.sock.sendall(b"y" * 40)
    assert bad.next() == b"*** Line longer than 16 bytes; disconnecting"
    assert bad.next() is None
    first_delivery(lambda: good.send(b"still here"), subscriber)  # the others are served
    assert bridge.stats.errors == 1


@dataclass
class WatchedStats(BridgeStats):
    """``BridgeStats`` that send ``slow`` when the first slow client is disconnected."""

    slow: Event = field(default_factory=Event)

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        if name == "slow_disconnects" and value == 1:
            self.slow.send()


@pytest.mark.timeout(60)
def test_tcp_bridge_drops_a_client_that_stops_reading_and_serves_the_others(
    tcp_bridge, green_ctx
):
    stats = WatchedStats()
    # A round of 20 messages fits in a queue of 32: the reader, which reads each
    # round before the next, never has one dropped.
    bridge, _, sub_url = tcp_bridge(
        queue_size=32, slow_timeout=0.3, send_buffer=4096, stats=stats
    )
    reader = tcp_bridge.client(bridge)
    stuck = tcp_bridge.client(bridge, rcvbuf=4096, read=False)  # never reads
    publisher = peer(green_ctx, zmq.PUB, sub_url, sndhwm=0)
    sync_lines(publisher, [reader])
    sent = 0
    with Timeout(40):
        # Until the stuck client's queue has stayed full for slow_timeout (its
        # slow clock stops whenever the kernel takes a little more of its backlog).
        while not stats.slow.ready():  # bounded by the Timeout
            for _ in range(20):
                publisher.send(b"m%06d " % sent + b"x" * 400)
                sent += 1
            for n in range(sent - 20, sent):  # paced by the reader: only the stuck one lags
                assert reader.next() == b"m%06d " % n + b"x" * 400
        # What the stuck client's socket holds, then the end.
        rest = b""
        while chunk := stuck.sock.recv(65536):
            rest += chunk
    assert bridge.stats.slow_disconnects == 1 and bridge.stats.dropped > 0
    publisher.send(b"after")
    assert reader.next() == b"after"
    assert b"after" not in rest


def test_tcp_bridge_stop_refuses_clients_and_ends_the_connected_ones(tcp_bridge):
    bridge, _, _ = tcp_bridge()
    client = tcp_bridge.client(bridge)
    address = bridge.address
    settle()  # the client is being served
    assert bridge.stats.active == 1
    with Timeout(IO_TIMEOUT):
        bridge.stop(IO_TIMEOUT)
    with pytest.raises(ConnectionRefusedError):
        nettools.connect(address)
    assert client.next() is None  # its queue flushed, then the connection ended
    assert bridge.stats.active == 0


# ------------------------------------------------------------------ WsBridge


class WsClient:
    """The ``websockets`` sync client, each call made in a pool thread so the hub
    (and the bridge on it) runs meanwhile."""

    def __init__(self, url: str) -> None:
        self.ws = tpool.execute(lambda: ws_connect(url, open_timeout=IO_TIMEOUT, proxy=None))
        self.ws.__enter__()  # what ``with`` would do: the connection closes on __exit__

    def send(self, obj) -> None:
        tpool.execute(self.ws.send, obj if isinstance(obj, str) else json.dumps(obj))

    def recv(self, timeout: float = IO_TIMEOUT) -> dict:
        return json.loads(tpool.execute(self.ws.recv, timeout))

    def first(self, send) -> dict:
        """Call ``send()`` until a message arrives; that message."""
        for _ in range(PROBES):
            send()
            try:
                return self.recv(0.02)
            except TimeoutError:
                pass
        raise AssertionError(f"nothing arrived after {PROBES} probes")

    def skip_to(self, wanted: dict) -> None:
        for _ in range(10 * PROBES):
            if self.recv() == wanted:
                return
        raise AssertionError(f"never got {wanted!r}")

    def close(self) -> None:
        tpool.execute(self.ws.__exit__, None, None, None)


@pytest.fixture
def ws_bridge(green_ctx):
    """``ws_bridge(pub=True, sub=True, **options)``: a started ``WsBridge`` served by
    a WSGI server on 127.0.0.1, port 0, its PUB and SUB bound on loopback; returns
    ``(bridge, url, pub_endpoint, sub_endpoint)``.  ``ws_bridge.client(url)`` connects
    a client.  Everything is closed and stopped afterwards."""
    made: list = []
    clients: list[WsClient] = []

    def start(pub: bool = True, sub: bool = True, **options):
        pub_sock, pub_url = bound(green_ctx, zmq.PUB) if pub else (None, None)
        sub_sock, sub_url = bound(green_ctx, zmq.SUB) if sub else (None, None)
        bridge = WsBridge(pub=pub_sock, sub=sub_sock, **options)
        stop = bridge.serve(nettools.listen((LOCAL, 0)))
        made.append(stop)
        return bridge, f"ws://{LOCAL}:{bridge.server.address[1]}/", pub_url, sub_url

    def client(url: str) -> WsClient:
        clients.append(WsClient(url))
        return clients[-1]

    start.client = client
    yield start
    for c in clients:
        c.close()
    for stop in made:
        stop(0)


def test_ws_bridge_subscriptions_match_topics_by_prefix(ws_bridge, green_ctx):
    bridge, url, _, sub_url = ws_bridge()
    ws = ws_bridge.client(url)
    ws.send({"subscribe": "news"})
    assert ws.recv() == {"subscribed": "news"}
    publisher = peer(green_ctx, zmq.PUB, sub_url)
    probe = ws.first(lambda: publisher.send_multipart([b"news", b'"probe"']))
    assert probe == {"topic": "news", "data": "probe"}
    publisher.send_multipart([b"news", b'"marker"'])
    ws.skip_to({"topic": "news", "data": "marker"})
    publisher.send_multipart([b"sport", b'{"goal": 1}'])  # not subscribed
    publisher.send_multipart([b"news.local", b'{"n": 1, "tags": ["a"]}'])
    publisher.send_multipart([b"news", b"plain \xfftext"])
    publisher.send_multipart([b"news"])
    assert ws.recv() == {"topic": "news.local", "data": {"n": 1, "tags": ["a"]}}
    assert ws.recv() == {"topic": "news", "data": "plain \ufffdtext"}
    assert ws.recv() == {"topic": "news", "data": None}
    assert bridge.stats.from_zmq >= 5 and bridge.stats.connections == 1


def test_ws_bridge_publish_sends_the_topic_and_the_data_as_json(ws_bridge, green_ctx):
    bridge, url, pub_url, _ = ws_bridge()
    ws = ws_bridge.client(url)
    subscriber = peer(green_ctx, zmq.SUB, pub_url)
    subscriber.subscribe(b"")
    message = {"publish": {"topic": "chat", "data": {"text": "hi", "n": [1, None]}}}
    got = first_delivery(lambda: ws.send(message), subscriber)
    assert got == [b"chat", b'{"text":"hi","n":[1,null]}']
    assert bridge.stats.to_zmq >= 1


def test_ws_bridge_keeps_a_topic_subscribed_while_any_client_wants_it(ws_bridge, green_ctx):
    _, url, _, sub_url = ws_bridge()
    a, b = ws_bridge.client(url), ws_bridge.client(url)
    for c in (a, b):
        c.send({"subscribe": "t"})
        assert c.recv() == {"subscribed": "t"}
    publisher = peer(green_ctx, zmq.PUB, sub_url)
    a.first(lambda: publisher.send_multipart([b"t", b'"probe"']))
    publisher.send_multipart([b"t", b'"marker"'])
    for c in (a, b):
        c.skip_to({"topic": "t", "data": "marker"})
    a.send({"unsubscribe": "t"})
    assert a.recv() == {"unsubscribed": "t"}
    publisher.send_multipart([b"t", b'"for b"'])
    assert b.recv() == {"topic": "t", "data": "for b"}  # the bridge's SUB still wants "t"
    a.send({"subscribe": "other"})
    assert a.recv() == {"subscribed": "other"}  # "for b" never reached a


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ("not json", "expected one JSON object"),
        ({"subscribe": "a", "publish": {}}, "expected one JSON object"),
        ({"subscribe": 5}, "subscribe: the topic must be a string"),
        ({"subscribe": "x" * 1025}, "subscribe: the topic must be a string of at most 1024 bytes"),
        ({"publish": {"data": 1}}, 'publish: expected {"topic": STRING, "data": ANY}'),
        ({"dance": 1}, "unknown request 'dance'"),
    ],
)
def test_ws_bridge_answers_a_bad_request_with_an_error(ws_bridge, request_, error):
    _, url, _, _ = ws_bridge()
    ws = ws_bridge.client(url)
    ws.send(request_)
    assert error in ws.recv()["error"]
    ws.send({"subscribe": "still served"})
    assert ws.recv() == {"subscribed": "still served"}


def test_ws_bridge_limits_subscriptions_and_refuses_what_it_has_no_socket_for(ws_bridge):
    _, url, _, _ = ws_bridge(pub=False, max_subscriptions=2)
    ws = ws_bridge.client(url)
    for topic in ("a", "b", "a"):  # the same topic again costs nothing
        ws.send({"subscribe": topic})
        assert ws.recv() == {"subscribed": topic}
    ws.send({"subscribe": "c"})
    assert ws.recv() == {"error": "at most 2 subscriptions"}
    ws.send({"publish": {"topic": "a", "data": 1}})
    assert ws.recv() == {"error": "this bridge has no PUB socket"}
    _, url, _, _ = ws_bridge(sub=False)
    ws = ws_bridge.client(url)
    ws.send({"subscribe": "a"})
    assert ws.recv() == {"error": "this bridge has no SUB socket"}
