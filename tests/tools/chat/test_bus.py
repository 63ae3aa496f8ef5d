"""Chat servers sharing rooms over a real ZeroMQ forwarder (``nettools zmq
proxy --type forwarder``), each server a ``nettools chat`` or ``nettools
wschat`` process with ``--bus``, and unmodified clients: plain TCP sockets,
the ``websockets`` library, pyzmq for a third party on the bus.

Synchronisation is by what clients receive: a server sends one other server's
messages in the order that server sent them, so once a client has a remote
user's message, its server knows everything that user's server published
before it.  A server is used once its log says the bus is connected (its own
heartbeat came back through the forwarder).
"""

from __future__ import annotations

import json
import queue
import signal
import socket
import threading
import time
import urllib.request

import pytest
import zmq
from helpers.chat import LineClient, WSClient
from helpers.cli import Cli, run_cli, stop_summary

from nettools.kernel.sync import Event
from nettools.tools.chat.bus import ChatBus

pytestmark = pytest.mark.timeout(60)

T = 20  # seconds any single wait may take before the test fails
# Short enough for a test, long enough that a busy machine does not expire a live server.
BUS_TIMING = ("--bus-heartbeat", "200ms", "--bus-expiry", "3s")


class Forwarder(Cli):
    """``nettools zmq proxy --type forwarder`` on loopback (port 0 unless given)."""

    def __init__(self, front: str = "tcp://127.0.0.1:0", back: str = "tcp://127.0.0.1:0"):
        super().__init__("zmq", "proxy", "--type", "forwarder",
                         "--frontend", front, "--backend", back)
        event = self.ready()
        self.front, self.back = event["frontend"], event["backend"]
        self.bus = f"{self.front},{self.back}"


class Server(Cli):
    """A chat server on the bus; its log is read as it comes."""

    def __init__(self, kind: str, bus: str, *args: str) -> None:
        port = ("--port", "0") if kind == "wschat" else ()
        super().__init__(kind, *port, "--bus", bus, *BUS_TIMING, *args)
        self.log: queue.Queue[str] = queue.Queue()
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.host, self.port = self.tcp_address()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            self.log.put(line)

    def wait_log(self, text: str) -> str:
        """The next log line containing ``text``."""
        deadline = time.monotonic() + T
        while True:
            try:
                line = self.log.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{text!r} not logged; log: {''.join(self.lines)}") from None
            if text in line:
                return line

    def connected(self) -> Server:
        self.wait_log("chat bus: connected")
        return self

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        self._reader.join(10)
        return self.proc.returncode, self.proc.stdout.read(), "".join(self.lines)

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        self.proc.stdout.close()
        self.proc.stderr.close()

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port

    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/chat"


@pytest.fixture
def net():
    """``net.forwarder()``, ``net.server(kind, bus)``, ``net.line(server)``,
    ``net.ws(server)``: everything is closed and stopped afterwards."""
    started: list = []

    class Net:
        def forwarder(self, *eps: str) -> Forwarder:
            started.append(Forwarder(*eps))
            return started[-1]

        def server(self, kind: str, bus: str, *args: str, wait: bool = True) -> Server:
            started.append(Server(kind, bus, *args))
            return started[-1].connected() if wait else started[-1]

        def line(self, server: Server) -> LineClient:
            started.append(LineClient(server.addr))
            return started[-1]

        def ws(self, server: Server) -> WSClient:
            started.append(WSClient(server.url()))
            return started[-1]

    yield Net()
    for thing in reversed(started):
        if isinstance(thing, Cli):
            thing.__exit__()
        else:
            thing.close()
    for thing in started:  # shown when the test fails
        if isinstance(thing, Server):
            print(f"--- log of {' '.join(thing.proc.args[3:5])} on port {thing.port}:")
            print("".join(thing.lines))


def enter(client: LineClient, nick: str) -> str:
    """Take ``nick`` on a line chat; the "You are in lobby, ..." line (who
    else is there depends on what the server has heard yet)."""
    client.expect("*** Welcome to nettools chat! Choose a nickname:")
    client.send(nick)
    client.expect(f"*** Hello, {nick}! Type /help for the commands.")
    line = client.readline()
    assert line.startswith("*** You are in lobby, "), line
    client.nick = nick
    return line


def see_all(client: LineClient, wanted: set[str], limit: int = 1000) -> None:
    """Read lines until each of ``wanted`` has come, in any order."""
    missing = set(wanted)
    for _ in range(limit):
        missing.discard(client.readline())
        if not missing:
            return
    raise AssertionError(f"never got {missing}")


def ws_skip_to(client: WSClient, kind: str, limit: int = 1000, **fields) -> dict:
    """Read messages until one of ``kind`` with ``fields`` comes."""
    for _ in range(limit):
        msg = client.recv()
        if msg["type"] == kind and all(msg.get(k) == v for k, v in fields.items()):
            return msg
    raise AssertionError(f"no {kind} {fields}")


# ------------------------------------------------------------------ line chats


def test_line_chat_users_on_two_servers_share_rooms(net):
    fwd = net.forwarder()
    a, b = net.server("chat", fwd.bus), net.server("chat", fwd.bus)
    bob = net.line(b)
    bob.join("bob")
    alice = net.line(a)
    enter(alice, "alice")
    bob.expect("*** alice joined lobby")
    alice.send("hi from A")
    bob.expect("<alice> hi from A")
    bob.send("hello from B")
    alice.skip_to("<bob> hello from B")
    for client in (alice, bob):
        client.send("/who")
        client.expect("*** In lobby: alice, bob")
    bob.send("/rooms")
    bob.expect("*** Rooms: lobby (2)")

    # A nickname in use on another server is taken; history spans the servers.
    carol = net.line(b)
    carol.expect("*** Welcome to nettools chat! Choose a nickname:")
    carol.send("ALICE")
    carol.expect("*** Nickname ALICE is taken (on another server); choose another:")
    carol.send("carol")
    carol.expect("*** Hello, carol! Type /help for the commands.")
    carol.expect("*** You are in lobby, with alice, bob")
    carol.expect("<alice> hi from A")
    carol.expect("<bob> hello from B")
    alice.expect("*** carol joined lobby")
    bob.expect("*** carol joined lobby")

    # Moving between rooms, actions, quitting.
    alice.send("/join room2")
    alice.expect("*** You are in room2, alone")
    bob.expect("*** alice left lobby (joined room2)")
    bob.send("/join room2")
    bob.expect("*** You are in room2, with alice")
    alice.expect("*** bob joined room2")
    carol.skip_to("*** bob left lobby (joined room2)")
    carol.send("/rooms")
    carol.expect("*** Rooms: lobby (1), room2 (2)")
    alice.send("/me waves")
    bob.expect("* alice waves")
    alice.send("/quit see you")
    alice.expect("*** Bye!")
    bob.expect("*** alice left room2 (quit: see you)")

    code, _out, err = a.stop()
    assert code == 0
    counts = stop_summary(err)["bus"]
    assert counts["connected"] is True and counts["servers"] == 1
    assert counts["sent"] > 0 and counts["received"] > 0 and counts["malformed"] == 0


def test_users_of_a_killed_server_expire_and_a_stopped_one_says_goodbye(net):
    fwd = net.forwarder()
    a, b = net.server("chat", fwd.bus), net.server("chat", fwd.bus)
    alice = net.line(a)
    alice.join("alice")
    bob = net.line(b)
    enter(bob, "bob")
    alice.expect("*** bob joined lobby")
    bob.send("here")
    alice.expect("<bob> here")

    b.kill()  # no goodbye: A drops bob once B has been silent for the expiry
    alice.expect("*** bob left lobby (server gone)")
    alice.send("/who")
    alice.expect("*** In lobby: alice")

    c = net.server("chat", fwd.bus)
    carol = net.line(c)
    enter(carol, "carol")
    alice.expect("*** carol joined lobby")
    assert c.stop()[0] == 0
    alice.expect("*** carol left lobby (server stopped)")
    alice.send("/who")
    alice.expect("*** In lobby: alice")


def test_when_the_forwarder_goes_away_servers_carry_on_and_catch_up_when_it_is_back(net):
    fwd = net.forwarder()
    a, b = net.server("chat", fwd.bus), net.server("chat", fwd.bus)
    alice = net.line(a)
    alice.join("alice")
    bob = net.line(b)
    enter(bob, "bob")
    alice.expect("*** bob joined lobby")
    bob.send("before")
    alice.expect("<bob> before")

    fwd.proc.kill()
    fwd.proc.wait(10)
    a.wait_log("chat bus: lost")
    alice.expect("*** bob left lobby (server gone)")
    carol = net.line(a)  # A goes on serving its own users
    carol.join("carol", ("alice",))
    alice.expect("*** carol joined lobby")
    carol.send("still here")
    alice.expect("<carol> still here")

    net.forwarder(fwd.front, fwd.back)  # back on the same endpoints
    a.connected()
    b.connected()
    see_all(alice, {"*** bob joined lobby"})
    bob.skip_to("*** carol joined lobby")
    bob.send("after")
    alice.expect("<bob> after")
    carol.skip_to("<bob> after")
    for server in (a, b):
        assert server.stop()[2].count("chat bus: lost") == 1


def free_tcp_endpoints(n: int) -> list[str]:
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return [f"tcp://127.0.0.1:{p}" for p in ports]


def test_without_a_bus_servers_serve_their_own_users_and_a_nickname_race_is_settled(net):
    front, back = free_tcp_endpoints(2)
    bus = f"{front},{back}"
    a = net.server("chat", bus, wait=False)
    b = net.server("chat", bus, wait=False)
    for server in (a, b):
        server.wait_log("cannot reach the forwarder")
    # Each server alone lets an "alice" in: neither knows of the other's.
    alice_a = net.line(a)
    alice_a.join("alice")
    alice_b = net.line(b)
    alice_b.join("alice")
    dave = net.line(b)
    dave.join("dave", ("alice",))
    alice_b.expect("*** dave joined lobby")
    dave.send("local talk")
    alice_b.expect("<dave> local talk")

    net.forwarder(front, back)
    a.connected()
    b.connected()
    # B's alice claimed the name later: B renames her, and everyone hears of it.
    alice_b.skip_to("*** Nickname alice was taken on another server at the same time; "
                    "you are now alice_2")
    alice_b.send("renamed")
    see_all(alice_a, {"*** dave joined lobby", "<alice_2> renamed"})
    alice_a.send("/who")
    alice_a.expect("*** In lobby: alice, alice_2, dave")
    dave.skip_to("<alice_2> renamed")
    dave.send("/who")
    dave.expect("*** In lobby: alice, alice_2, dave")
    for server in (a, b):
        log = server.stop()[2]
        assert log.count("cannot reach the forwarder") == 1  # one warning, not one per try


# ------------------------------------------------------------------ browsers


def test_wschat_users_on_two_servers_share_rooms(net):
    fwd = net.forwarder()
    a, b = net.server("wschat", fwd.bus), net.server("wschat", fwd.bus)
    bob = net.ws(b)
    bob.join("bob")
    alice = net.ws(a)
    alice.join("alice")
    bob.expect("joined", nick="alice", room="lobby")
    alice.send(type="say", text="hi from A")
    bob.expect("message", nick="alice", text="hi from A")
    bob.send(type="say", text="hello from B")
    bob.expect("message", nick="bob", text="hello from B")
    ws_skip_to(alice, "message", nick="bob", text="hello from B")
    assert alice.users() == bob.users() == ["alice", "bob"]

    carol = net.ws(b)
    carol.send(type="join", nick="Alice")
    carol.expect("error", code="nick-taken")
    welcome, history = carol.join("carol")
    assert welcome["users"] == ["alice", "bob", "carol"]
    assert [(m["nick"], m["text"]) for m in history["messages"]] == [
        ("alice", "hi from A"), ("bob", "hello from B"),
    ]
    carol.send(type="rooms")
    assert carol.expect("rooms")["rooms"] == [{"name": "lobby", "users": 3}]
    alice.expect("joined", nick="carol")

    alice.send(type="join", room="room2")
    alice.expect("welcome", room="room2", users=["alice"])
    ws_skip_to(bob, "left", nick="alice", reason="moved", to="room2")
    bob.send(type="join", room="room2")
    assert bob.expect("welcome", room="room2")["users"] == ["alice", "bob"]
    ws_skip_to(alice, "joined", nick="bob", room="room2")
    with urllib.request.urlopen(f"http://{b.host}:{b.port}/healthz", timeout=T) as resp:
        assert json.load(resp)["bus"] == {"connected": True, "servers": 1}


def test_line_chat_and_wschat_users_share_a_room(net):
    fwd = net.forwarder()
    a, b = net.server("chat", fwd.bus), net.server("wschat", fwd.bus)
    bob = net.ws(b)
    bob.join("bob")
    alice = net.line(a)
    enter(alice, "alice")
    bob.expect("joined", nick="alice")
    alice.send("hi")
    alice.send("/me waves")
    bob.expect("message", nick="alice", text="hi")
    assert bob.expect("message", nick="alice", text="waves")["action"] is True
    bob.send(type="say", text="esc \x1b[2J and\nnewline")
    bob.expect("message", nick="bob")
    alice.skip_to("<bob> esc ^[[2J and^Jnewline")  # shown as text on a terminal
    alice.send("/nick alice2")
    alice.expect("*** alice is now known as alice2")
    bob.expect("renamed", old="alice", nick="alice2")
    assert bob.users() == ["alice2", "bob"]
    alice.send("/who")
    alice.expect("*** In lobby: alice2, bob")

    carol = net.line(a)  # a line chat user's history includes the browser's message
    enter(carol, "carol")
    carol.expect("<alice> hi")
    carol.expect("* alice waves")
    carol.expect("<bob> esc ^[[2J and^Jnewline")


# ------------------------------------------------------------------ the wire


def test_malformed_bus_messages_are_ignored_and_counted(net):
    fwd = net.forwarder()
    a = net.server("chat", fwd.bus)
    alice = net.line(a)
    alice.join("alice")

    ctx = zmq.Context()
    try:
        pub = ctx.socket(zmq.PUB)
        pub.linger = 0
        pub.connect(fwd.front)

        def message(kind: str, **fields) -> list[bytes]:
            obj = {"v": 1, "server": "third-party", "kind": kind, "ts": time.time(), **fields}
            return [b"chat/" + fields.get("room", "").encode(), json.dumps(obj).encode()]

        # Messages are dropped until the chat server's subscription has reached
        # the forwarder and the forwarder's has reached this PUB: announce until
        # the chat server itself has heard one (a tap of our own on the forwarder
        # can be subscribed before the chat server is).
        alive = message("alive", users=0, digest=0)
        for _ in range(400):
            pub.send_multipart(alive)
            try:
                if "server third-party appeared" in a.log.get(timeout=0.05):
                    break
            except queue.Empty:
                pass
        else:
            raise AssertionError("the chat server never heard the third-party publisher")

        bad = [
            [b"chat/lobby"],  # one frame
            [b"chat/lobby", b"{}", b"extra"],  # three
            [b"chat/lobby", b"not json"],
            [b"chat/lobby", json.dumps({"v": 2, "server": "x", "kind": "say"}).encode()],
            message("say", room="lobby", nick="bad nick!", text="x"),
            message("say", room="lobby", nick="ghost", text=42),
            message("teleport", room="lobby"),
        ]
        for frames in bad:
            pub.send_multipart(frames)
        # Over the 64K cap: dropped, and counted apart.
        pub.send_multipart(message("say", room="lobby", nick="ghost", text="x" * 70_000))
        pub.send_multipart(message("say", room="lobby", nick="ghost", text="after the junk"))
        alice.expect("<ghost> after the junk")  # the same sender's junk came first
    finally:
        ctx.destroy(0)

    code, _out, err = a.stop()
    assert code == 0
    counts = stop_summary(err)["bus"]
    assert counts["malformed"] == len(bad) and counts["oversized"] == 1
    assert "malformed message" in err and "over the size cap" in err


class Recorder:
    """A chat server's side of the bus that only writes down what it hears."""

    def __init__(self, expected_joins: int) -> None:
        self.joins: list[tuple[str, str]] = []
        self.expected = expected_joins
        self.all_joined = Event()

    def bus_joined(self, room: str, nick: str, ts: float) -> None:
        self.joins.append((room, nick))
        if len(self.joins) == self.expected:
            self.all_joined.send(True)

    def bus_said(self, *args) -> None:
        pass

    bus_left = bus_renamed = bus_rename_local = bus_said


def test_a_new_server_gets_all_users_of_another_in_parts_under_the_size_cap(net):
    fwd = net.forwarder()
    users = [(f"user{i}", "lobby" if i % 3 else "room2") for i in range(150)]
    old = ChatBus(fwd.front, fwd.back, heartbeat=0.2, expiry=3, max_message=1024)
    old.attach(Recorder(0))
    for nick, room in users:
        old.joined(room, nick, 1000.0)
    new = ChatBus(fwd.front, fwd.back, heartbeat=0.2, expiry=3, max_message=1024)
    seen = Recorder(len(users))
    new.attach(seen)
    old.start()
    try:
        new.start()
        try:
            assert seen.all_joined.wait(T), seen.joins
            assert sorted(seen.joins) == sorted((room, nick) for nick, room in users)
            assert sorted(new.nicks_in("room2")) == sorted(n for n, r in users if r == "room2")
            assert new.count_in("LOBBY") == 100 and new.nick_taken("USER7")
            # 150 users do not fit in one message of 1K: they came in parts.
            assert new.stats.received > 4 and new.stats.malformed == 0
            assert old.stats.too_big == 0
        finally:
            new.stop()
    finally:
        old.stop()


def test_bad_bus_options_are_usage_errors():
    for args, fragment in [
        (("--bus", "tcp://127.0.0.1:5555"), "two endpoints"),
        (("--bus", "tcp://127.0.0.1:5555,nope://x"), "unknown transport"),
        (("--bus", "tcp://127.0.0.1:1,tcp://127.0.0.1:2", "--bus-heartbeat", "5s",
          "--bus-expiry", "1s"), "expiry must be longer"),
    ]:
        for command in ("chat", "wschat"):
            result = run_cli(command, *args)
            assert result.returncode == 2, result.stderr
            assert fragment in result.stderr and "Traceback" not in result.stderr
