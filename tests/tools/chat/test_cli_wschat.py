"""``nettools wschat`` through the real entry point, talked to by the unmodified
``websockets`` client library (its sync client) on loopback.

Each client's messages reach it in the order the server produced them, so a
message a client should *not* get is checked without sleeping: the client asks
for something (``users``) and the next message must be the answer.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

pytestmark = pytest.mark.timeout(60)

from helpers.chat import WSClient  # noqa: E402
from helpers.cli import Cli, run_cli, stop_summary  # noqa: E402

T = 10  # seconds any single client-side wait may take before the test fails


class WSChat(Cli):
    """``nettools wschat`` in a subprocess; killed on leaving the ``with``."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        super().__init__("wschat", "--port", "0", *args, env=env)
        self.host, self.port = self.tcp_address()

    def url(self, scheme: str = "ws") -> str:
        return f"{scheme}://{self.host}:{self.port}/chat"


@pytest.fixture
def server():
    """``server(*args)``: a running wschat; everything is stopped afterwards."""
    running: list[WSChat] = []
    clients: list[WSClient] = []

    def start(*args: str, env: dict | None = None) -> WSChat:
        chat = WSChat(*args, env=env)
        running.append(chat)
        return chat

    def client(chat: WSChat, **kw: Any) -> WSClient:
        c = WSClient(chat.url(), **kw)
        clients.append(c)
        return c

    start.client = client
    yield start
    for c in clients:
        c.close()
    for chat in running:
        chat.__exit__()


@pytest.fixture
def two(server):
    """A chat with alice and bob in the lobby."""
    chat = server()
    alice = server.client(chat)
    alice.join("alice")
    bob = server.client(chat)
    welcome, _ = bob.join("bob")
    assert welcome["users"] == ["alice", "bob"]
    alice.expect("joined", nick="bob", room="lobby")
    return chat, alice, bob


# ------------------------------------------------------------------ the page


def test_page_health_check_and_not_found(server):
    chat = server()
    conn = http.client.HTTPConnection(chat.host, chat.port, timeout=T)
    conn.request("GET", "/")
    resp = conn.getresponse()
    page = resp.read().decode()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/html")
    assert "new WebSocket" in page and "textContent" in page
    assert "innerHTML" not in page and "http://" not in page and "https://" not in page
    csp = resp.getheader("Content-Security-Policy")
    assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    conn.request("GET", "/healthz")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {
        "status": "ok", "clients": 0, "rooms": 1
    }
    conn.request("GET", "/nope")
    resp = conn.getresponse()
    assert resp.status == 404
    resp.read()
    conn.request("POST", "/", body=b"x")
    resp = conn.getresponse()
    assert resp.status == 405
    resp.read()
    conn.request("GET", "/chat")  # not an upgrade
    assert conn.getresponse().status == 400
    conn.close()


# ------------------------------------------------------------------ the schema


def test_join_say_users_and_notices(two):
    chat, alice, bob = two
    welcome_limits = {"max_message": 2000, "rate": 5.0, "burst": 10, "history": 50, "name_max": 32}
    carol = WSClient(chat.url())
    welcome, history = carol.join("carol")
    assert welcome["users"] == ["alice", "bob", "carol"] and welcome["version"] == 1
    assert welcome["limits"] == welcome_limits and history["messages"] == []
    for c in (alice, bob):
        c.expect("joined", nick="carol")
    alice.send(type="say", text="héllo <b>all</b>\nsecond line")
    for c in (alice, bob, carol):  # the sender too: everyone sees the server's order
        msg = c.expect("message", nick="alice", room="lobby", text="héllo <b>all</b>\nsecond line")
        assert isinstance(msg["id"], int) and isinstance(msg["time"], float)
    assert bob.users() == ["alice", "bob", "carol"]
    carol.close()
    for c in (alice, bob):
        c.expect("left", nick="carol", room="lobby", reason="left")
    assert alice.users() == ["alice", "bob"]


def test_history_replays_the_last_n_messages_on_join(server):
    chat = server("--history", "3")
    alice = server.client(chat)
    alice.join("alice")
    for i in range(5):
        alice.send(type="say", text=f"m{i}")
        alice.expect("message", text=f"m{i}")
    carol = server.client(chat)
    _, history = carol.join("carol")
    assert [m["text"] for m in history["messages"]] == ["m2", "m3", "m4"]
    assert all(m["type"] == "message" and m["nick"] == "alice" for m in history["messages"])


def test_rooms_keep_their_talk_and_are_listed(two):
    chat, alice, bob = two
    bob.send(type="join", room="#dev")  # a later join moves; "#" is optional
    welcome = bob.expect("welcome", room="dev", nick="bob")
    assert welcome["users"] == ["bob"]
    bob.expect("history", room="dev", messages=[])
    alice.expect("left", nick="bob", reason="moved", to="dev")
    bob.send(type="say", text="only in dev")
    bob.expect("message", text="only in dev", room="dev")
    assert alice.users() == ["alice"]  # the next message alice gets: not the dev one
    alice.send(type="rooms")
    assert alice.expect("rooms")["rooms"] == [
        {"name": "dev", "users": 1}, {"name": "lobby", "users": 1}
    ]
    bob.send(type="join", room="lobby")
    bob.expect("welcome", room="lobby")
    bob.expect("history")
    alice.expect("joined", nick="bob")
    bob.send(type="rooms")
    assert bob.expect("rooms")["rooms"] == [{"name": "lobby", "users": 2}]  # empty rooms go


def test_look_alike_nicknames_and_invisible_characters(two):
    chat, alice, bob = two
    for nick in ("\uff41\uff4c\uff49\uff43\uff45", "al\u0131ce", "aIice", "BOB"):
        other = WSClient(chat.url())
        try:
            other.send(type="join", nick=nick)
            other.expect("error", code="nick-taken")
        finally:
            other.close()
    other = WSClient(chat.url())
    try:
        for nick, why in [("\u0430lice", "different scripts"), ("x\u202e", "invisible"),
                          ("\u3164", "invisible")]:
            other.send(type="join", nick=nick)
            assert why in other.expect("error", code="invalid-nick")["message"]
    finally:
        other.close()
    alice.send(type="say", text="gnp.\u202eexe \U0001f468\u200d\U0001f469")
    for c in (alice, bob):
        c.expect("message", nick="alice", text="gnp.<U+202E>exe \U0001f468\u200d\U0001f469")


def test_nicknames_are_unique_and_bad_requests_get_errors(server):
    chat = server("--burst", "100")
    alice = server.client(chat)
    alice.join("alice")
    other = WSClient(chat.url())
    other.send(type="say", text="too early")
    other.expect("error", code="not-joined")
    other.send(type="join", nick="ALICE")
    other.expect("error", code="nick-taken")
    other.send(type="join", nick="two words")
    other.expect("error", code="invalid-nick")
    other.send(type="join", nick="x" * 33)
    other.expect("error", code="invalid-nick")
    other.send(type="join", nick="carol", room="no room")
    other.expect("error", code="invalid-room")
    for raw in ("not json", "[1, 2]", '{"type": "dance"}', '{"type": 5}', "[" * 5000):
        other.ws.send(raw)
        other.expect("error", code="bad-message")
    other.ws.send(b"\x00binary")
    other.expect("error", code="bad-message")
    other.join("carol")  # the connection survived all of that
    alice.expect("joined", nick="carol")
    other.send(type="join", nick="someone-else", room="lobby")
    other.expect("error", code="nick-fixed")
    other.send(type="say", text=5)
    other.expect("error", code="bad-message")
    other.close()
    alice.expect("left", nick="carol")
    # The nickname is free again once its holder left.
    again = WSClient(chat.url())
    again.join("Carol")
    again.close()


def test_message_length_limit(server):
    chat = server("--max-message", "10")
    alice = server.client(chat)
    welcome, _ = alice.join("alice")
    assert welcome["limits"]["max_message"] == 10
    alice.send(type="say", text="x" * 11)
    alice.expect("error", code="too-long")
    alice.send(type="say", text="   ")
    alice.expect("error", code="empty")
    alice.send(type="say", text="é" * 10)  # characters, not bytes
    alice.expect("message", text="é" * 10)


def test_oversized_frame_closes_1009(server):
    chat = server("--max-message", "10")
    alice = server.client(chat, compression=None)
    alice.join("alice")
    alice.ws.send(json.dumps({"type": "say", "text": "x" * 100_000}))
    exc = alice.closed()
    assert exc.rcvd is not None and exc.rcvd.code == 1009


def test_rate_limit_answers_with_an_error_then_floods_are_cut_off(server):
    chat = server("--rate", "0.5", "--burst", "2")
    alice = server.client(chat)
    alice.join("alice")  # the join spends one token
    alice.send(type="say", text="one")
    alice.expect("message", text="one")
    alice.send(type="say", text="two")
    error = alice.expect("error", code="rate-limited")
    assert 0 < error["retry_after"] <= 2
    assert alice.ws.ping().wait(T)  # refused, not disconnected

    # An unbounded client queue: the library then reads on while the test only
    # sends, and sees the close frame as soon as it comes.
    flooder = server.client(chat, max_queue=None)
    flooder.join("flooder")
    for i in range(200):
        try:
            flooder.send(type="say", text=f"spam {i}")
        except ConnectionClosed:
            break
    exc = flooder.closed()
    assert exc.rcvd is not None and exc.rcvd.code == 1008
    code, _out, err = chat.stop()
    assert code == 0
    result = stop_summary(err, "wschat")
    assert result["flood_disconnects"] == 1 and result["rate_limited"] >= 20


def test_origin_check(server):
    chat = server("--origin", "http://good.example")
    with pytest.raises(InvalidStatus) as refused:
        WSClient(chat.url(), origin="http://evil.example")
    assert refused.value.response.status_code == 403
    ok = server.client(chat, origin="http://good.example")
    ok.join("alice")


# ------------------------------------------------------------------ many clients


def test_every_client_sees_the_messages_of_concurrent_senders_in_one_order(server):
    n_clients, n_senders, per_sender = 40, 4, 50
    chat = server("--rate", "10000", "--burst", "10000", "--history", "0")
    # Unbounded client queues: a client that stopped calling recv (they all do
    # at the end) must not look like a slow reader when it closes.
    clients = [server.client(chat, max_queue=None) for _ in range(n_clients)]
    for i, c in enumerate(clients):
        c.join(f"u{i:02d}", room="crowd")
    total = n_senders * per_sender
    seen: dict[str, list[tuple[str, str]]] = {}
    failures: list[str] = []

    def collect(c: WSClient) -> None:
        got = []
        try:
            while len(got) < total:
                msg = c.recv()
                if msg["type"] == "message":
                    got.append((msg["nick"], msg["text"]))
        except Exception as exc:  # reported by the main thread
            failures.append(f"{c.nick}: {exc!r}")
        seen[c.nick] = got

    def send_all(c: WSClient) -> None:
        for k in range(per_sender):
            c.send(type="say", text=f"{k:03d}")

    readers = [threading.Thread(target=collect, args=(c,)) for c in clients]
    for t in readers:
        t.start()
    senders = [threading.Thread(target=send_all, args=(c,)) for c in clients[:n_senders]]
    for t in senders:
        t.start()
    for t in senders + readers:
        t.join(45)
    assert not failures, failures[:3]
    reference = seen[clients[0].nick]
    assert len(reference) == total
    for c in clients:
        assert seen[c.nick] == reference, f"{c.nick} saw another order"
    for sender in clients[:n_senders]:
        own = [text for nick, text in reference if nick == sender.nick]
        assert own == [f"{k:03d}" for k in range(per_sender)]


# ------------------------------------------------------------------ slow clients


def test_a_client_that_stops_reading_is_dropped_and_delays_nobody(server):
    chat = server(
        "--queue-size", "8", "--send-buffer", "4K", "--slow-timeout", "500ms",
        "--rate", "10000", "--burst", "10000", "--history", "0",
    )
    alice, bob = server.client(chat), server.client(chat)
    alice.join("alice")
    bob.join("bob")
    alice.expect("joined", nick="bob")
    # The stuck client: a tiny receive window, no compression, and a library
    # queue of one message, so once it stops calling recv nothing more is read.
    raw = socket.create_connection((chat.host, chat.port), timeout=T)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    stuck = server.client(chat, sock=raw, compression=None, max_queue=1)
    stuck.join("stuck")
    for c in (alice, bob):
        c.expect("joined", nick="stuck")

    kicked = None
    sent = 0
    for sent in range(1, 2001):
        alice.send(type="say", text=f"{sent:05d} " + "x" * 1000)
        for c in (alice, bob):  # the readers keep up with every message
            msg = c.recv()
            if msg["type"] == "left":
                assert msg["nick"] == "stuck" and msg["reason"] == "too slow", msg
                kicked = msg
                msg = c.recv()
            assert msg["type"] == "message" and msg["text"].startswith(f"{sent:05d} "), msg
        if kicked:
            break
    assert kicked, f"the stuck client was not dropped after {sent} messages"
    assert alice.users() == ["alice", "bob"]
    # The stuck client is cut off without a close frame, long before the end.
    texts = []
    try:
        for _ in range(2000):
            texts.append(stuck.recv().get("text", ""))
    except ConnectionClosed as exc:
        assert exc.rcvd is None  # 1006: no close frame could pass
    assert len(texts) < sent
    code, _out, err = chat.stop()
    assert code == 0, err
    result = stop_summary(err, "wschat")
    assert result["slow_disconnects"] == 1 and result["dropped"] >= 1
    assert result["connections"] == 3


def test_a_silent_client_is_told_and_closed_after_the_idle_timeout(server):
    chat = server("--idle-timeout", "300ms")
    alice = server.client(chat)
    alice.join("alice")
    error = alice.expect("error", code="idle")
    assert "nothing sent for 0.3s" in error["message"]
    exc = alice.closed()
    assert exc.rcvd is not None and exc.rcvd.code == 1000


# ------------------------------------------------------------------ stopping


def test_sigterm_closes_websockets_with_1001_and_prints_the_summary(two):
    chat, alice, bob = two
    alice.send(type="say", text="bye soon")
    for c in (alice, bob):
        c.expect("message", text="bye soon")
    code, out, err = chat.stop()
    for c in (alice, bob):
        exc = c.closed()
        assert exc.rcvd is not None and exc.rcvd.code == 1001
        assert exc.rcvd.reason == "server shutting down"
    assert code == 0, err
    result = stop_summary(err, "wschat")
    assert result["connections"] == 2 and result["messages"] == 1 and result["active"] == 0


def test_the_library_class_runs_without_the_cli():
    import nettools
    from nettools import tpool
    from nettools.tools.chat.wschat import WSChatServer

    server = WSChatServer(nettools.listen(("127.0.0.1", 0)), history=5).start()
    port = server.address[1]
    joined = threading.Event()
    result: dict[str, Any] = {}

    def client() -> None:
        c = WSClient(f"ws://127.0.0.1:{port}/chat")
        c.join("py")
        c.send(type="say", text="from python")
        c.expect("message", text="from python")
        joined.set()
        result["closed"] = c.closed()

    def stop_when_joined() -> None:
        assert joined.wait(T)

    try:
        waiter = nettools.spawn(tpool.execute, client)
        tpool.execute(stop_when_joined)
        assert server.nicks == ["py"]
        server.stop(5)
        waiter.wait()
    finally:
        server.stop(0)
    assert result["closed"].rcvd.code == 1001
    assert server.stats.messages == 1 and server.stats.connections == 1


# ------------------------------------------------------------------ TLS


def test_tls_page_and_websocket(server, tmp_path: Path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    chat = server("--tls-cert", str(pem))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    c = WSClient(chat.url("wss"), ssl=client_ctx)
    try:
        c.join("alice")
        c.send(type="say", text="secret")
        c.expect("message", text="secret")
    finally:
        c.close()
    conn = http.client.HTTPSConnection(chat.host, chat.port, timeout=T, context=client_ctx)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 200 and b"new WebSocket" in resp.read()
    conn.close()
    with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate
        WSClient(chat.url("wss"), ssl=ssl.create_default_context())


# ------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--port", "70000"), "--port"),
        (("--rate", "0"), "--rate"),
        (("--max-message", "0"), "--max-message"),
        (("--slow-timeout", "soon"), "invalid duration"),
        (("--send-buffer", "lots"), "invalid size"),
        (("--tls-key", "key.pem"), "--tls-key needs --tls-cert"),
        (("--tls-cert", "/nonexistent/cert.pem"), "cannot load --tls-cert"),
    ],
)
def test_bad_options_exit_2_with_one_line(args, fragment):
    res = run_cli("wschat", *args)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], res.stderr


def test_options_from_the_environment(server):
    chat = server(env={"NETTOOLS_HISTORY": "1", "NETTOOLS_MAX_MESSAGE": "7"})
    c = server.client(chat)
    welcome, _ = c.join("alice")
    assert welcome["limits"]["history"] == 1 and welcome["limits"]["max_message"] == 7


def test_port_in_use_exits_1_with_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = run_cli("wschat", "--port", str(busy.getsockname()[1]))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        res.stderr.strip()
    ] and "address already in use" in res.stderr


def test_help_has_an_example_and_documents_the_policy():
    res = run_cli("wschat", "--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "Example: nettools wschat" in text and "--slow-timeout" in text and "1001" in text
    assert "nettools wschat --port" in run_cli("--help").stdout
