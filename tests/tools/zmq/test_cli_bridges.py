"""``nettools zmq tcp`` and ``nettools zmq ws`` through the real entry point.

Real ZeroMQ peers (pyzmq), real TCP line clients (stdlib sockets, each read by
a thread of its own) and a real websocket client (``websockets``), all on
loopback.  Subscriptions reach a publisher some time after a subscriber
connects, so each test first publishes probes until one arrives (bounded in
count), then checks the messages that matter behind a marker: every client
gets its messages in order, so what follows the marker is exact.
"""

from __future__ import annotations

import json
import queue
import signal
import socket
import threading
import time

import pytest
import zmq
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State
from websockets.sync.client import connect as ws_connect
from websockets.uri import parse_uri

pytestmark = pytest.mark.timeout(60)

from helpers.cli import Cli, run_cli, stop_summary  # noqa: E402
from helpers.tls import Certs  # noqa: E402
from helpers.zmq import PROBES, TCP0, drain, first_delivery, peer, recv  # noqa: E402

IO_TIMEOUT = 20


class Bridge(Cli):
    """``nettools zmq tcp|ws`` in a subprocess; killed on leaving the ``with``."""

    def __init__(self, kind: str, *args: str) -> None:
        super().__init__("zmq", kind, *args)
        self.service = f"zmq-{kind}"

    def ready(self, timeout: float = 20) -> dict:
        event = super().ready(timeout)
        assert event["service"] == self.service
        return event

    def stats(self) -> dict:
        """The counts so far (SIGUSR1)."""
        self.proc.send_signal(signal.SIGUSR1)
        for _ in range(100):
            line = self.proc.stderr.readline()
            assert line, "stderr closed"
            if line.startswith("{"):
                event = json.loads(line)
                if event["event"] == "stats":
                    return event
        raise AssertionError("no stats line")


class LineClient:
    """A TCP client whose lines a thread collects into a queue."""

    def __init__(self, addr: tuple[str, int], *, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:  # before connecting, so the window starts small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.connect(addr)
        self.lines: queue.Queue = queue.Queue()

    def start_reading(self) -> LineClient:
        threading.Thread(target=self._read, daemon=True).start()
        return self

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


def sync_lines(publisher: zmq.Socket, clients: list[LineClient]) -> None:
    """Publish probes until every client gets one, then a marker; on return
    each client has read everything up to the marker."""
    waiting = set(clients)
    for i in range(PROBES):
        publisher.send(b"probe %d" % i)
        for c in list(waiting):
            try:
                c.lines.get(timeout=0.01 if c is not clients[0] else 0.02)
                waiting.discard(c)
            except queue.Empty:
                pass
        if not waiting:
            break
    assert not waiting, f"{len(waiting)} client(s) got no probe"
    publisher.send(b"marker")
    for c in clients:
        c.skip_to(b"marker")


# ---------------------------------------------------------------- zmq tcp


def test_tcp_bridge_both_ways_with_several_clients(ctx):
    with Bridge("tcp", "--pub", TCP0, "--sub", TCP0) as bridge:
        ready = bridge.ready()
        host, _, port = ready["address"].rpartition(":")
        clients = [LineClient((host, int(port))).start_reading() for _ in range(4)]

        # ZeroMQ -> every client, frames joined by a space.
        publisher = peer(ctx, zmq.PUB, ready["sub"])
        sync_lines(publisher, clients)
        publisher.send_multipart([b"news", b"hello world"])
        publisher.send(b"two\nlines")
        for c in clients:
            assert c.next() == b"news hello world"
            assert c.next() == b"two lines"

        # Every client -> ZeroMQ, one message per line.
        subscriber = peer(ctx, zmq.SUB, ready["pub"])
        subscriber.subscribe(b"")
        first_delivery(lambda: clients[0].send(b"probe"), subscriber)
        drain(subscriber)
        for i, c in enumerate(clients):
            c.send(b"from client %d\r" % i)  # CRLF endings are stripped too
        got = sorted(recv(subscriber)[0] for _ in clients)
        assert got == [b"from client %d" % i for i in range(len(clients))]

        code, _, err = bridge.stop()
    assert code == 0
    counts = stop_summary(err, "zmq-tcp")
    assert counts["connections"] == 4
    assert counts["from_zmq"] >= 3 and counts["to_zmq"] >= 5
    assert counts["dropped"] == 0 and counts["slow_disconnects"] == 0


def test_tcp_bridge_push_and_topics(ctx):
    with Bridge("tcp", "--push", TCP0, "--sub", TCP0, "--topic", "a", "--topic", "b") as bridge:
        ready = bridge.ready()
        assert "push" in ready and "pub" not in ready
        host, _, port = ready["address"].rpartition(":")
        client = LineClient((host, int(port))).start_reading()
        puller = peer(ctx, zmq.PULL, ready["push"])
        for i in range(10):
            client.send(b"job %d" % i)
        assert [recv(puller)[0] for _ in range(10)] == [b"job %d" % i for i in range(10)]

        publisher = peer(ctx, zmq.PUB, ready["sub"])
        for _ in range(PROBES):
            publisher.send(b"a probe")
            try:
                assert client.lines.get(timeout=0.02) == b"a probe"
                break
            except queue.Empty:
                pass
        else:
            raise AssertionError("no probe arrived")
        publisher.send(b"a marker")
        client.skip_to(b"a marker")
        for message in (b"c not subscribed", b"b one", b"ccc neither", b"a two"):
            publisher.send(message)
        assert client.next() == b"b one"
        assert client.next() == b"a two"
        code, _, _ = bridge.stop()
    assert code == 0


@pytest.mark.timeout(120)
def test_tcp_bridge_drops_a_client_that_stops_reading(ctx):
    with Bridge("tcp", "--sub", TCP0, "--queue-size", "16", "--slow-timeout", "500ms",
                "--send-buffer", "4K", "--hwm", "0") as bridge:
        ready = bridge.ready()
        host, _, port = ready["address"].rpartition(":")
        # Connected first, so the bridge knows it before the readers get a probe.
        stuck = LineClient((host, int(port)), rcvbuf=1024)
        readers = [LineClient((host, int(port))).start_reading() for _ in range(3)]
        publisher = peer(ctx, zmq.PUB, ready["sub"], sndhwm=0)
        sync_lines(publisher, readers)

        sent = 0
        for _ in range(300):
            for _ in range(20):
                publisher.send(b"m%05d " % sent + b"x" * 400)
                sent += 1
            # Pace by the readers, so only the stuck client falls behind.
            for c in readers:
                for n in range(sent - 20, sent):
                    assert c.next() == b"m%05d " % n + b"x" * 400
            if bridge.stats()["dropped"]:
                break
        else:
            raise AssertionError(f"nothing was dropped for the stuck client after {sent} messages")
        # Its slow clock runs now: wait (bounded) for the bridge to give up on it.
        deadline = time.monotonic() + IO_TIMEOUT
        while not bridge.stats()["slow_disconnects"]:
            assert time.monotonic() < deadline, "the stuck client was not dropped"
            time.sleep(0.05)

        publisher.send(b"after")
        for c in readers:
            assert c.next() == b"after"
        # The stuck client was cut off: it reads what was sent, then the end.
        stuck.sock.settimeout(IO_TIMEOUT)
        rest = b""
        try:
            while chunk := stuck.sock.recv(65536):
                rest += chunk
        except ConnectionResetError:
            pass
        assert b"after" not in rest
        code, _, err = bridge.stop()
    assert code == 0
    counts = stop_summary(err, "zmq-tcp")
    assert counts["slow_disconnects"] == 1
    assert counts["dropped"] > 0


def test_tcp_bridge_line_limit(ctx):
    with Bridge("tcp", "--pub", TCP0, "--max-line", "100") as bridge:
        ready = bridge.ready()
        host, _, port = ready["address"].rpartition(":")
        client = LineClient((host, int(port))).start_reading()
        client.send(b"y" * 101)
        assert client.next() == b"*** Line longer than 100 bytes; disconnecting"
        assert client.next() is None
        code, _, err = bridge.stop()
    assert code == 0
    assert stop_summary(err, "zmq-tcp")["errors"] == 1


def bound_publisher(ctx) -> tuple[zmq.Socket, str]:
    """A PUB socket that binds, for a bridge whose SUB connects (as to a forwarder)."""
    publisher = ctx.socket(zmq.PUB)
    publisher.linger = 0
    publisher.bind(TCP0)
    return publisher, publisher.LAST_ENDPOINT.decode()


def test_tcp_bridge_drops_an_oversized_message_and_keeps_its_feed(ctx):
    publisher, url = bound_publisher(ctx)
    # The default --max-line is 4K; the SUB connects, so a lost connection
    # would never come back.
    with Bridge("tcp", "--sub", f"connect:{url}") as bridge:
        ready = bridge.ready()
        host, _, port = ready["address"].rpartition(":")
        client = LineClient((host, int(port))).start_reading()
        sync_lines(publisher, [client])
        publisher.send(b"z" * 5000)
        publisher.send_multipart([b"big", b"q" * (1 << 20)])
        publisher.send(b"after")
        assert client.next() == b"after"
        code, _, err = bridge.stop()
    assert code == 0
    assert stop_summary(err, "zmq-tcp")["oversized"] == 2
    assert err.count("over the size cap of 4096 bytes") == 1  # rate-limited


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --pub, --push or --sub"),
        (["--pub", TCP0, "--push", TCP0], "not both"),
        (["--pub", TCP0, "--topic", "x"], "--topic needs --sub"),
        (["--pub", "udp://x:1"], "unknown transport"),
        (["--pub", TCP0, "--listen", "nowhere"], "invalid"),
    ],
)
def test_tcp_bridge_usage_errors(args, message):
    result = run_cli("zmq", "tcp", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# ---------------------------------------------------------------- zmq ws


def ws_next(ws, timeout: float = IO_TIMEOUT) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def ws_first(ws, send) -> dict:
    for _ in range(PROBES):
        send()
        try:
            return json.loads(ws.recv(timeout=0.02))
        except TimeoutError:
            pass
    raise AssertionError(f"nothing arrived after {PROBES} probes")


def subscribe_and_sync(ws, publisher: zmq.Socket, topic: str) -> None:
    """Subscribe ``ws`` to ``topic`` and publish probes until one arrives, then
    a marker; on return ``ws`` has read everything up to the marker."""
    ws.send(json.dumps({"subscribe": topic}))
    assert ws_next(ws) == {"subscribed": topic}
    t = topic.encode()
    ws_first(ws, lambda: publisher.send_multipart([t, b'"probe"']))
    publisher.send_multipart([t, b'"marker"'])
    for _ in range(10 * PROBES):
        if ws_next(ws) == {"topic": topic, "data": "marker"}:
            return
    raise AssertionError("the marker never came")


def exercise_ws_bridge(ctx, ready: dict, url: str, **connect_options) -> None:
    """Subscribe, receive, publish and a bad request, on one connection."""
    publisher = peer(ctx, zmq.PUB, ready["sub"])
    subscriber = peer(ctx, zmq.SUB, ready["pub"])
    subscriber.subscribe(b"")
    with ws_connect(url, open_timeout=IO_TIMEOUT, **connect_options) as ws:
        ws.send(json.dumps({"subscribe": "news"}))
        assert ws_next(ws) == {"subscribed": "news"}
        probe = ws_first(ws, lambda: publisher.send_multipart([b"news", b'"probe"']))
        assert probe == {"topic": "news", "data": "probe"}
        publisher.send_multipart([b"news", b'"marker"'])
        while ws_next(ws) != {"topic": "news", "data": "marker"}:
            pass
        publisher.send_multipart([b"sport", b'{"goal": 1}'])  # not subscribed
        publisher.send_multipart([b"news.local", b'{"n": 1, "tags": ["a"]}'])
        publisher.send_multipart([b"news", b"plain text"])
        publisher.send_multipart([b"news"])
        assert ws_next(ws) == {"topic": "news.local", "data": {"n": 1, "tags": ["a"]}}
        assert ws_next(ws) == {"topic": "news", "data": "plain text"}
        assert ws_next(ws) == {"topic": "news", "data": None}

        message = {"publish": {"topic": "chat", "data": {"text": "hi"}}}
        got = first_delivery(lambda: ws.send(json.dumps(message)), subscriber)
        assert got == [b"chat", b'{"text":"hi"}']

        ws.send("not json")
        assert "error" in ws_next(ws)
        ws.send(json.dumps({"unsubscribe": "news"}))
        assert ws_next(ws) == {"unsubscribed": "news"}
        publisher.send_multipart([b"news", b'"gone"'])
        ws.send(json.dumps({"subscribe": "zzz"}))  # the next reply shows nothing came in between
        assert ws_next(ws) == {"subscribed": "zzz"}


def test_ws_bridge_subscribe_receive_publish(ctx):
    with Bridge("ws", "--sub", TCP0, "--pub", TCP0) as bridge:
        ready = bridge.ready()
        assert ready["tls"] is False
        exercise_ws_bridge(ctx, ready, f"ws://{ready['address']}/")
        code, _, err = bridge.stop()
    assert code == 0
    counts = stop_summary(err, "zmq-ws")
    assert counts["connections"] == 1 and counts["to_zmq"] >= 1


def test_ws_bridge_over_tls(ctx, tmp_path):
    certs = Certs("127.0.0.1")
    _, cert_pem, key_pem = certs.write(tmp_path)
    client_tls = certs.client_context()
    with Bridge("ws", "--sub", TCP0, "--pub", TCP0,
                "--tls-cert", str(cert_pem), "--tls-key", str(key_pem)) as bridge:
        ready = bridge.ready()
        assert ready["tls"] is True
        exercise_ws_bridge(ctx, ready, f"wss://{ready['address']}/", ssl=client_tls)
        code, _, _ = bridge.stop()
    assert code == 0


def stuck_ws_client(host: str, port: int, topic: str) -> socket.socket:
    """A websocket client (the ``websockets`` protocol, driven by hand) that
    subscribes to ``topic``, waits for the answer, then never reads again."""
    sock = socket.socket()
    sock.settimeout(IO_TIMEOUT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # before the window opens
    sock.connect((host, port))
    proto = ClientProtocol(parse_uri(f"ws://{host}:{port}/"))
    proto.send_request(proto.connect())
    sock.sendall(b"".join(proto.data_to_send()))
    for _ in range(100):
        if proto.state is State.OPEN:
            break
        proto.receive_data(sock.recv(4096))
    assert proto.state is State.OPEN, proto.handshake_exc
    proto.send_text(json.dumps({"subscribe": topic}).encode())
    sock.sendall(b"".join(proto.data_to_send()))
    for _ in range(100):
        if any(getattr(event, "data", None) for event in proto.events_received()):
            return sock  # the answer to the subscription: from now on, silence
        proto.receive_data(sock.recv(4096))
    raise AssertionError("no answer to the subscription")


@pytest.mark.timeout(120)
def test_ws_bridge_drops_a_client_that_stops_reading(ctx):
    with Bridge("ws", "--sub", TCP0, "--queue-size", "16", "--slow-timeout", "500ms",
                "--send-buffer", "4K", "--hwm", "0") as bridge:
        ready = bridge.ready()
        host, _, port = ready["address"].rpartition(":")
        url = f"ws://{ready['address']}/"
        publisher = peer(ctx, zmq.PUB, ready["sub"], sndhwm=0)
        stuck = stuck_ws_client(host, int(port), "t")
        with ws_connect(url, open_timeout=IO_TIMEOUT) as reader:
            subscribe_and_sync(reader, publisher, "t")
            sent = 0
            for _ in range(300):
                for _ in range(20):
                    publisher.send_multipart([b"t", b'"m%05d %s"' % (sent, b"x" * 400)])
                    sent += 1
                # Pace by the reader, so only the stuck client falls behind.
                for n in range(sent - 20, sent):
                    assert ws_next(reader)["data"] == f"m{n:05d} " + "x" * 400
                if bridge.stats()["dropped"]:
                    break
            else:
                raise AssertionError(f"nothing was dropped after {sent} messages")
            deadline = time.monotonic() + IO_TIMEOUT
            while not bridge.stats()["slow_disconnects"]:
                assert time.monotonic() < deadline, "the stuck client was not dropped"
                time.sleep(0.05)
            publisher.send_multipart([b"t", b'"after"'])
            assert ws_next(reader) == {"topic": "t", "data": "after"}
        stuck.close()
        code, _, err = bridge.stop()
    assert code == 0
    counts = stop_summary(err, "zmq-ws")
    assert counts["slow_disconnects"] == 1 and counts["dropped"] > 0


def test_ws_bridge_message_size_limit(ctx):
    with Bridge("ws", "--pub", TCP0, "--max-message", "1K") as bridge:
        ready = bridge.ready()
        with ws_connect(f"ws://{ready['address']}/", open_timeout=IO_TIMEOUT) as ws:
            ws.send(json.dumps({"subscribe": "x"}))
            assert "error" in ws_next(ws)  # no --sub: subscribing is refused
            ws.send("x" * 2000)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=IO_TIMEOUT)
        assert closed.value.rcvd.code == 1009
        code, _, _ = bridge.stop()
    assert code == 0


def test_ws_bridge_drops_an_oversized_message_and_keeps_its_feed(ctx):
    publisher, url = bound_publisher(ctx)
    with Bridge("ws", "--sub", f"connect:{url}", "--max-message", "1K") as bridge:
        ready = bridge.ready()
        with ws_connect(f"ws://{ready['address']}/", open_timeout=IO_TIMEOUT) as ws:
            subscribe_and_sync(ws, publisher, "t")
            publisher.send_multipart([b"t", b'"' + b"x" * 4000 + b'"'])  # over 1K as sent
            # 202 bytes as sent, but over 1K as the JSON a client gets (\u0001 each).
            publisher.send_multipart([b"t", b'"' + b"\x01" * 200 + b'"'])
            publisher.send_multipart([b"t", b'"after"'])
            assert ws_next(ws) == {"topic": "t", "data": "after"}
        code, _, err = bridge.stop()
    assert code == 0
    assert stop_summary(err, "zmq-ws")["oversized"] == 2


def test_ws_bridge_origin_check(ctx):
    with Bridge("ws", "--pub", TCP0, "--origin", "https://app.example") as bridge:
        ready = bridge.ready()
        url = f"ws://{ready['address']}/"
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, origin="https://elsewhere.example", open_timeout=IO_TIMEOUT)
        assert refused.value.response.status_code == 403
        with ws_connect(url, origin="https://app.example", open_timeout=IO_TIMEOUT) as ws:
            ws.send(json.dumps({"unsubscribe": "x"}))
            assert "error" in ws_next(ws)  # no --sub
        code, _, _ = bridge.stop()
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --sub, --pub or both"),
        (["--pub", TCP0, "--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        (["--pub", TCP0, "--tls-cert", "/nonexistent.pem"], "cannot load"),
        (["--sub", "ipc://"], "invalid endpoint"),
    ],
)
def test_ws_bridge_usage_errors(args, message):
    result = run_cli("zmq", "ws", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
