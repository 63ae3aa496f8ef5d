"""Websockets: nettools.web.websocket served over HTTP, talked to by real clients.

The server is ``nettools.web.wsgi.WSGIServer``.  The client side is the
unmodified ``websockets`` library (its sync client in an OS thread, its asyncio
client in an OS thread with its own loop) or, where a test needs a misbehaving
peer, a hand-made client on a blocking stdlib socket in an OS thread.  The
server runs on this thread's hub; the test greenlet waits for client threads
with ``tpool.execute``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers.recipes import Recipe
from helpers.tls import Certs
from helpers.wsclient import RawClient
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

import nettools
from nettools import Event, spawn, tpool
from nettools.web import websocket, wsgi

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"
T = 10  # seconds any single client-side wait may take before the test fails


# --------------------------------------------------------------------- server


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[str, Any]]]:
    """``serve(app)`` -> ``(ws_url, server)``; every server is stopped at the end."""
    made: list[Any] = []

    def start(app: Callable) -> tuple[str, Any]:
        server = wsgi.WSGIServer(nettools.listen((LOCAL, 0)), app, log_output=False).start()
        made.append(server)
        port = server.address[1]
        return f"ws://{LOCAL}:{port}/chat?room=1", server

    yield start
    for server in made:
        server.stop(0)


def in_thread(fn: Callable, *args: Any) -> Any:
    """Run a blocking client function in an OS thread; the hub runs meanwhile."""
    return tpool.execute(fn, *args)


def assert_quiet_teardown(server: Any, caplog: Any) -> None:
    """Once every connection of ``server`` has been torn down, nothing at WARNING
    or above was logged."""
    deadline = time.monotonic() + T
    while server.server.connections and time.monotonic() < deadline:
        nettools.sleep(0.01)
    assert not server.server.connections
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage() for r in loud]


@websocket.WebSocketWSGI
def echo(ws: websocket.WebSocket) -> None:
    for message in ws:
        ws.send(message)


# --------------------------------------------------------------------- tests


def test_echo_text_and_binary(serve):
    url, _ = serve(echo)

    def client() -> list[Any]:
        with connect(url, open_timeout=T) as ws:
            ws.send("héllo")
            text = ws.recv(timeout=T)
            ws.send(b"\x00\x01\xff")
            data = ws.recv(timeout=T)
            ws.send(["frag", "mented"])  # one message in three frames
            frag = ws.recv(timeout=T)
            big = os.urandom(200_000)
            ws.send(big)
            return [text, data, frag, ws.recv(timeout=T) == big]

    assert in_thread(client) == ["héllo", b"\x00\x01\xff", "fragmented", True]


def test_a_read_that_emptied_the_socket_waits_before_the_next_read(serve, monkeypatch):
    # Between messages a read into nothing fails with EAGAIN, which costs more
    # than the read: after a short read the handler waits for the hub first.
    from nettools.web.websocket import connection

    tries = {"data": 0, "nothing": 0}

    def counting_recv(sock: Any) -> bytes | None:
        data = recv_now(sock)
        tries["data" if data is not None else "nothing"] += 1
        return data

    recv_now = connection._recv_now
    monkeypatch.setattr(connection, "_recv_now", counting_recv)
    url, _ = serve(echo)

    def client() -> list[str]:
        with connect(url, open_timeout=T) as ws:
            replies = []
            for i in range(40):  # one at a time: each waits for the last echo
                ws.send(f"message {i}")
                replies.append(ws.recv(timeout=T))
            return replies

    assert in_thread(client) == [f"message {i}" for i in range(40)]
    assert tries["data"] >= 40
    assert tries["nothing"] < 10  # one per message without the wait first


def test_handler_sees_path_environ_and_decorator_forms(serve):
    seen: dict[str, Any] = {}

    @websocket.WebSocketWSGI(max_message_size=1000, ping_interval=None)
    def handler(ws: websocket.WebSocket) -> None:
        seen.update(path=ws.path, query=ws.environ["QUERY_STRING"], origin=ws.origin)
        ws.send(ws.wait())

    assert isinstance(handler, websocket.WebSocketWSGI)
    assert handler.__name__ == "handler" and handler.max_message_size == 1000
    # eventlet's spelling of the limit still works
    assert websocket.WebSocketWSGI(echo.handler, max_frame_length=5).max_message_size == 5
    url, _ = serve(handler)

    def client() -> str:
        with connect(url, open_timeout=T, origin="https://app.example") as ws:
            ws.send("x")
            return ws.recv(timeout=T)

    assert in_thread(client) == "x"
    assert seen == {"path": "/chat", "query": "room=1", "origin": "https://app.example"}


@pytest.mark.parametrize("code,reason", [(1000, ""), (4000, "custom goodbye")])
def test_server_closes_with_code(serve, code, reason):
    ended = Event()

    @websocket.WebSocketWSGI
    def handler(ws: websocket.WebSocket) -> None:
        ws.wait()
        ws.close(code, reason)
        ended.send((ws.wait(), ws.close_code, ws.closed))

    url, _ = serve(handler)

    def client() -> tuple[int | None, str | None]:
        with connect(url, open_timeout=T) as ws:
            ws.send("bye?")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=T)
            return ws.protocol.close_code, ws.protocol.close_reason

    assert in_thread(client) == (code, reason)
    # The client echoed the code; after close() wait() returns None.
    assert ended.wait(T) == (None, code, True)


def test_client_closes_with_code(serve):
    ended = Event()

    @websocket.WebSocketWSGI
    def handler(ws: websocket.WebSocket) -> None:
        messages = list(ws)
        ended.send((messages, ws.close_code, ws.close_reason))

    url, _ = serve(handler)

    def client() -> tuple[int | None, str | None]:
        with connect(url, open_timeout=T) as ws:
            ws.send("last words")
            ws.close(4001, "client leaves")
            return ws.protocol.close_code, ws.protocol.close_reason

    assert in_thread(client) == (4001, "client leaves")  # as echoed by the server
    assert ended.wait(T) == (["last words"], 4001, "client leaves")


def test_ping_from_client_is_answered(serve):
    url, _ = serve(echo)

    def client() -> bool:
        with connect(url, open_timeout=T) as ws:
            return ws.ping(b"are you there").wait(T)

    assert in_thread(client) is True


def test_keepalive_pings_and_closes_silent_client_with_1011(serve):
    ended = Event()

    @websocket.WebSocketWSGI(ping_interval=0.1, ping_timeout=0.3)
    def handler(ws: websocket.WebSocket) -> None:
        ended.send((ws.wait(), ws.closed))

    url, _ = serve(handler)

    def client() -> list[tuple[int, bytes]]:
        raw = RawClient(url)
        assert raw.status == 101
        frames = []
        start = time.monotonic()
        try:
            while time.monotonic() - start < T:
                frames.append(raw.recv_frame())  # never answered
                if frames[-1][0] == 0x8:
                    break
        finally:
            raw.close()
        return frames

    frames = in_thread(client)
    assert frames[0][0] == 0x9  # ping
    opcode, payload = frames[-1]
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1011
    assert ended.wait(T) == (None, True)


def test_keepalive_drops_peer_that_stops_reading(serve, caplog):
    """A sender blocked on a peer that takes no data is freed by the keepalive."""
    caplog.set_level(logging.DEBUG)
    ended = Event()

    @websocket.WebSocketWSGI(ping_interval=0.1, ping_timeout=0.3)
    def handler(ws: websocket.WebSocket) -> None:
        sent = 0
        try:
            while sent < 1 << 30:  # bounded: far beyond any socket buffer
                ws.send(bytes(1 << 16))
                sent += 1 << 16
        finally:
            ended.send(sent)

    url, server = serve(handler)
    raw = in_thread(RawClient, url)  # handshakes, then never reads
    try:
        assert ended.wait(T) < 1 << 30
    finally:
        raw.close(reset=True)
    assert_quiet_teardown(server, caplog)


def test_keepalive_keeps_answering_client_connected(serve):
    url, _ = serve(websocket.WebSocketWSGI(echo.handler, ping_interval=0.05, ping_timeout=2))

    def client() -> list[str]:
        # The library answers pings by itself; several intervals pass in between.
        with connect(url, open_timeout=T) as ws:
            got = []
            for i in range(5):
                time.sleep(0.1)
                ws.send(str(i))
                got.append(ws.recv(timeout=T))
            return got

    assert in_thread(client) == ["0", "1", "2", "3", "4"]


def test_keepalive_reads_pong_while_handler_is_busy(serve):
    """A handler that sends without reading must not be failed for a missing pong:
    the keepalive reads the pong itself.  The handler outlasts several pings."""
    ended = Event()
    ticks = 100  # 2 s busy: the first pong is looked for after 1.05 s

    @websocket.WebSocketWSGI(ping_interval=0.05, ping_timeout=1)
    def handler(ws: websocket.WebSocket) -> None:
        for i in range(ticks):
            ws.send(f"tick {i}")
            nettools.sleep(0.02)
        ended.send(ws.closed)  # before the client may close after the last message
        ws.send("done")

    url, _ = serve(handler)

    def client() -> list[Any]:
        with connect(url, open_timeout=T) as ws:
            return [ws.recv(timeout=T) for _ in range(ticks + 1)]

    assert in_thread(client) == [f"tick {i}" for i in range(ticks)] + ["done"]
    assert ended.wait(T) is False


def test_tls_echo_with_keepalive_reading_for_a_busy_handler():
    certs = Certs("localhost")
    server_ctx, client_ctx = certs.server_context(), certs.client_context()
    ticks = 75  # 1.5 s busy: the first pong is looked for after 1.05 s

    @websocket.WebSocketWSGI(ping_interval=0.05, ping_timeout=1)
    def handler(ws: websocket.WebSocket) -> None:
        for i in range(ticks):  # busy: the keepalive reads the pongs through TLS
            ws.send(f"tick {i}")
            nettools.sleep(0.02)
        for message in ws:
            ws.send(message)

    server = wsgi.WSGIServer(
        nettools.listen((LOCAL, 0)), handler, log_output=False, ssl_context=server_ctx
    ).start()
    url = f"wss://localhost:{server.address[1]}/"

    def client() -> list[Any]:
        with connect(url, open_timeout=T, ssl=client_ctx) as ws:
            got = [ws.recv(timeout=T) for _ in range(ticks)]
            ws.send("secure")
            got.append(ws.recv(timeout=T))
            return got

    try:
        assert in_thread(client) == [f"tick {i}" for i in range(ticks)] + ["secure"]
    finally:
        server.stop(0)


def test_permessage_deflate_negotiated(serve):
    url, _ = serve(echo)
    plain_url, _ = serve(websocket.WebSocketWSGI(echo.handler, compression=False))
    text = "compressible " * 5000

    def client(u: str) -> tuple[str | None, bool]:
        with connect(u, open_timeout=T) as ws:
            ws.send(text)
            return ws.response.headers.get("Sec-WebSocket-Extensions"), ws.recv(timeout=T) == text

    ext, ok = in_thread(client, url)
    assert ok and ext is not None and ext.startswith("permessage-deflate")
    assert in_thread(client, plain_url) == (None, True)


def test_oversize_after_decompression_closes_1009(serve):
    ended = Event()

    @websocket.WebSocketWSGI(max_message_size=1 << 20)
    def handler(ws: websocket.WebSocket) -> None:
        ended.send((ws.wait(), ws.closed))

    url, _ = serve(handler)
    bomb = bytes(10 << 20)
    # On the wire it is far below the limit: only decompression reveals the size.
    assert len(zlib.compress(bomb)) < 1 << 20

    def client() -> tuple[int, str | None]:
        with connect(url, open_timeout=T, compression="deflate") as ws:
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            ws.send(bomb)
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=T)
            return info.value.rcvd.code, ws.protocol.close_code

    assert in_thread(client) == (1009, 1009)
    assert ended.wait(T) == (None, True)


def test_oversize_fragmented_message_closes_1009(serve):
    url, _ = serve(websocket.WebSocketWSGI(echo.handler, max_message_size=1000))

    def client() -> int | None:
        with connect(url, open_timeout=T, compression=None) as ws:
            with pytest.raises(ConnectionClosed):
                # Each frame fits, the message does not.  The close may come
                # before the library has sent its final (empty) fragment.
                ws.send(["a" * 600, "b" * 600])
                ws.recv(timeout=T)
            return ws.protocol.close_code

    assert in_thread(client) == 1009


def test_origin_check(serve):
    url, _ = serve(websocket.WebSocketWSGI(echo.handler, origins=["https://good.example"]))

    def client(origin: str) -> Any:
        try:
            with connect(url, open_timeout=T, origin=origin) as ws:
                ws.send("hi")
                return ws.recv(timeout=T)
        except InvalidStatus as exc:
            return exc.response.status_code

    assert in_thread(client, "https://evil.example") == 403
    assert in_thread(client, "https://good.example") == "hi"


def test_plain_http_request_gets_400(serve):
    url, server = serve(echo)

    def client() -> tuple[int, str | None, bytes]:
        conn = http.client.HTTPConnection(LOCAL, server.address[1], timeout=T)
        conn.request("GET", "/chat")
        resp = conn.getresponse()
        return resp.status, resp.getheader("connection"), resp.read()

    # eventlet's answer: 400, the connection closed, no body
    assert in_thread(client) == (400, "close", b"")


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_peer_leaving_without_close_frame_ends_quietly(serve, caplog, reset):
    caplog.set_level(logging.DEBUG)
    ended = Event()

    @websocket.WebSocketWSGI
    def handler(ws: websocket.WebSocket) -> None:
        first = ws.wait()
        ws.send("got it")
        ended.send((first, ws.wait(), ws.close_code))
        with pytest.raises(websocket.WebSocketClosed):
            ws.send("anyone?")  # raising here is for the handler; it ends quietly too

    url, server = serve(handler)

    def client() -> None:
        raw = RawClient(url)
        raw.send_frame(0x1, b"hello")
        assert raw.recv_frame() == (0x1, b"got it")
        raw.close(reset=reset)

    in_thread(client)
    assert ended.wait(T) == ("hello", None, 1006)
    assert_quiet_teardown(server, caplog)


def test_send_after_peer_left_escaping_handler_is_quiet(serve, caplog):
    caplog.set_level(logging.DEBUG)
    done = Event()

    @websocket.WebSocketWSGI
    def handler(ws: websocket.WebSocket) -> None:
        try:
            ws.wait()  # returns None: the peer left
            for _ in range(100):
                ws.send("x" * 1000)  # raises WebSocketClosed, out of the handler
        finally:
            done.send()

    url, server = serve(handler)
    in_thread(lambda: RawClient(url).close(reset=True))
    done.wait(T)
    assert_quiet_teardown(server, caplog)


def test_handler_error_closes_1011_and_is_logged(serve, caplog):
    @websocket.WebSocketWSGI
    def handler(ws: websocket.WebSocket) -> None:
        ws.wait()
        raise ValueError("bug in the app")

    url, _ = serve(handler)

    def client() -> int | None:
        with connect(url, open_timeout=T) as ws:
            ws.send("boom")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=T)
            return ws.protocol.close_code

    assert in_thread(client) == 1011
    assert any(
        "bug in the app" in r.getMessage() or r.exc_info
        for r in caplog.records
        if r.levelno == logging.ERROR
    )


def test_several_greenthreads_send_at_once(serve):
    per_sender, senders = 200, 5

    @websocket.WebSocketWSGI
    def handler(ws: websocket.WebSocket) -> None:
        def blast(n: int) -> None:
            for i in range(per_sender):
                ws.send(f"{n}:{i}:" + "y" * 3000)

        threads = [spawn(blast, n) for n in range(senders)]
        for gt in threads:
            gt.wait()
        ws.wait()  # until the client closes

    url, _ = serve(handler)

    def client() -> dict[int, list[int]]:
        got: dict[int, list[int]] = {n: [] for n in range(senders)}
        with connect(url, open_timeout=T) as ws:
            for _ in range(per_sender * senders):
                n, i, _pad = ws.recv(timeout=T).split(":")
                got[int(n)].append(int(i))
        return got

    got = in_thread(client)
    assert all(got[n] == list(range(per_sender)) for n in range(senders))


def test_200_concurrent_clients(serve):
    url, _ = serve(echo)
    clients, rounds = 200, 5

    async def one(n: int) -> bool:
        async with aconnect(url, open_timeout=T) as ws:
            for r in range(rounds):
                await ws.send(f"{n}-{r}")
                if await asyncio.wait_for(ws.recv(), T) != f"{n}-{r}":
                    return False
        return True

    async def all_clients() -> list[bool]:
        return await asyncio.gather(*(one(n) for n in range(clients)))

    results = in_thread(asyncio.run, all_clients())
    assert results == [True] * clients


def test_graceful_stop_closes_idle_and_lets_mid_message_finish(serve):
    url, server = serve(echo)
    idle_client: dict[str, Any] = {}

    def open_both() -> RawClient:
        ws = contextlib.ExitStack().enter_context(connect(url, open_timeout=T))
        ws.send("warm")
        assert ws.recv(timeout=T) == "warm"
        idle_client["ws"] = ws
        raw = RawClient(url)
        raw.send_frame(0x1, b"first half, ", fin=False)
        # A ping after the fragment: its pong proves the server has read the fragment.
        raw.send_frame(0x9, b"sync")
        assert raw.recv_frame() == (0xA, b"sync")
        return raw

    raw = in_thread(open_both)
    stop_started = time.monotonic()
    stopper = spawn(server.stop, 30)

    def finish() -> tuple[float, list[Any]]:
        ws = idle_client["ws"]
        start = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=T)  # the idle one goes at once, with a close frame
        idle_closed_after = time.monotonic() - start
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        ws.close()
        raw.send_frame(0x0, b"second half")
        frames = [raw.recv_frame()]
        try:
            frames.append(raw.recv_frame())
        except (EOFError, OSError):
            frames.append("eof")
        raw.close()
        return idle_closed_after, frames

    idle_closed_after, frames = in_thread(finish)
    assert idle_closed_after < T
    assert frames[0] == (0x1, b"first half, second half")  # the busy one finished its message
    # and, waiting again, got the same goodbye
    assert frames[1] == (0x8, struct.pack("!H", 1001) + b"server shutting down")
    stopper.wait()  # and the stop itself did not need its 30 s: nothing was left to kill
    assert time.monotonic() - stop_started < T


def test_recipe_websocket_echo():
    with Recipe("websocket_echo.py", "--port", "0") as recipe:
        host, port = recipe.tcp_address()
        assert recipe.ready_event["service"] == "websocket-echo"
        with connect(f"ws://{recipe.ready_event['address']}/", open_timeout=T) as ws:
            ws.send("recipe")
            assert ws.recv(timeout=T) == "recipe"
            ws.send(b"\x01\x02")
            assert ws.recv(timeout=T) == b"\x01\x02"
        page = http.client.HTTPConnection(host, port, timeout=T)
        page.request("GET", "/")
        resp = page.getresponse()
        assert resp.status == 200 and b"new WebSocket" in resp.read()
        page.close()
        code, _, err = recipe.stop()
        assert code == 0, err


# ----------------------------------------------------------------- idle cost


def _open_idle(port: int) -> Any:
    """A websocket on a green socket, through its handshake and one echo, then idle."""
    from nettools.green import socket as gsocket

    sock = gsocket.create_connection((LOCAL, port), timeout=T)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    mask = os.urandom(4)
    sock.sendall(b"\x81\x82" + mask + bytes(b ^ mask[i] for i, b in enumerate(b"hi")))
    reply = head.split(b"\r\n\r\n", 1)[1]
    while len(reply) < 4:
        reply += sock.recv(16)
    assert reply == b"\x81\x02hi"
    return sock


def _live(kind: Any) -> int:
    import gc

    count = 0
    for o in gc.get_objects():
        try:
            count += isinstance(o, kind)
        except ReferenceError:  # a dead weakref.proxy
            pass
    return count


def test_an_idle_websocket_keeps_one_greenthread_and_nothing_of_its_request(serve):
    # What an idle websocket costs is what is parked: its handler's greenthread
    # (the keepalive is a hub timer between pings), the socket, the protocol
    # and the environ -- not a second greenthread, the HTTP parser, the request
    # head, or the exception of the read that found nothing (see make bench:
    # websocket.ws_mem_idle_10k).
    import httptools
    from greenlet import greenlet
    from helpers.green import settle

    _, server = serve(echo)
    port = server.address[1]
    for sock in [_open_idle(port) for _ in range(5)]:  # warm up the pools of workers
        sock.close()
    settle()
    greenlets, parsers = _live(greenlet), _live(httptools.HttpRequestParser)
    socks = [_open_idle(port) for _ in range(50)]
    try:
        settle()
        assert _live(greenlet) - greenlets <= 50
        assert _live(httptools.HttpRequestParser) - parsers == 0
        assert _live(BlockingIOError) == 0
    finally:
        for sock in socks:
            sock.close()
