"""``nettools chat`` through the real entry point, with real sockets on loopback.

Clients are plain blocking stdlib sockets with timeouts.  A line a client
should *not* get is checked without sleeping: the client then sends a command
and the next line it reads must be the command's reply, since each client's
lines reach it in the order the server produced them.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from helpers.paths import ROOT

pytestmark = pytest.mark.timeout(60)

from helpers.chat import LineClient  # noqa: E402
from helpers.cli import Cli, clean_env, run_cli, stop_summary  # noqa: E402

LOCAL = "127.0.0.1"
IO_TIMEOUT = 20


class Chat(Cli):
    """``nettools chat`` in a subprocess; killed on leaving the ``with``."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        super().__init__("chat", *args, env=env)

    def ready(self, timeout: float = 20) -> dict:
        event = super().ready(timeout)
        assert event["service"] == "chat"
        return event

    def address(self) -> tuple[str, int]:
        return self.tcp_address()


@pytest.fixture
def chat_factory():
    """``start(*args)``: a running chat and its address; all stopped afterwards."""
    running: list[Chat] = []
    clients: list[LineClient] = []

    def start(*args: str, env: dict | None = None) -> tuple[Chat, tuple[str, int]]:
        chat = Chat(*args, env=env)
        running.append(chat)
        return chat, chat.address()

    start.clients = clients
    yield start
    for c in clients:
        c.close()
    for chat in running:
        chat.__exit__()


@pytest.fixture
def two(chat_factory):
    """A chat with alice and bob in the lobby."""
    chat, addr = chat_factory()
    alice = LineClient(addr)
    alice.join("alice")
    bob = LineClient(addr)
    bob.join("bob", ("alice",))
    alice.expect("*** bob joined lobby")
    chat_factory.clients.extend([alice, bob])
    return chat, addr, alice, bob


# ------------------------------------------------------------------ nicknames


def test_nickname_prompt_repeats_on_an_invalid_or_taken_name(chat_factory):
    chat, addr = chat_factory()
    alice = LineClient(addr)
    alice.join("alice")
    bob = LineClient(addr)
    chat_factory.clients.extend([alice, bob])
    bob.expect("*** Welcome to nettools chat! Choose a nickname:")
    bob.send("two words")
    bob.expect("*** Invalid nickname 'two words': use 1-32 letters, digits or _-.[]{}|^`', "
               "in one script; "
               "choose another:")
    bob.send("x" * 33)
    assert bob.readline().startswith("*** Invalid nickname")
    bob.send("evil\x1b[2J")
    line = bob.readline()
    assert line.startswith("*** Invalid nickname 'evil^[[2J'") and "\x1b" not in line
    bob.send("ALICE")  # unique without regard to case
    bob.expect("*** Nickname ALICE is taken; choose another:")
    bob.send("bob")
    bob.expect("*** Hello, bob! Type /help for the commands.")
    bob.expect("*** You are in lobby, with alice")
    alice.expect("*** bob joined lobby")


def test_look_alike_nicknames_are_taken_and_mixed_scripts_refused(two):
    _chat, addr, alice, bob = two
    carol = LineClient(addr)
    try:
        carol.expect("*** Welcome to nettools chat! Choose a nickname:")
        for typed, answer in [
            ("\u0430lice", "*** Invalid nickname '\u0430lice': letters of different scripts may "
                           "not be mixed; choose another:"),  # a Cyrillic а
            ("\uff41\uff4c\uff49\uff43\uff45", "*** Nickname alice is taken; choose another:"),
            ("al\u0131ce", "*** Nickname al\u0131ce is taken; choose another:"),  # dotless ı
            ("aIice", "*** Nickname aIice is taken; choose another:"),  # a capital I
            ("bob\u202e", "*** Invalid nickname 'bob<U+202E>': invisible characters are not "
                          "allowed; choose another:"),
            ("\u3164", "*** Invalid nickname '<U+1160>': invisible characters are not allowed; "
                       "choose another:"),  # a Hangul filler: a name that shows as nothing
        ]:
            carol.send(typed)
            carol.expect(answer)
        carol.send("\uff43\uff41\uff52\uff4f\uff4c")  # fullwidth: taken as plain "carol"
        carol.expect("*** Hello, carol! Type /help for the commands.")
        alice.expect("*** carol joined lobby")
        bob.expect("*** carol joined lobby")
        alice.send("/nick \u0430lice")
        alice.expect("*** Invalid nickname '\u0430lice': letters of different scripts may not "
                     "be mixed")
        bob.send("/nick B\u041eB")  # a Cyrillic О between Latin letters
        bob.expect("*** Invalid nickname 'B\u041eB': letters of different scripts may not be "
                   "mixed")
    finally:
        carol.close()


def test_invisible_characters_reach_nobody(two):
    _chat, _addr, alice, bob = two
    alice.send("file:gnp.\u202eexe and a\u200bb, a family \U0001f468\u200d\U0001f469")
    bob.expect("<alice> file:gnp.<U+202E>exe and a<U+200B>b, a family "
               "\U0001f468\u200d\U0001f469")
    alice.send("/me \u2066hides\u2069")
    bob.expect("* alice <U+2066>hides<U+2069>")


def test_nick_changes_are_announced_and_stay_unique(two):
    _chat, addr, alice, bob = two
    bob.send("/nick Alice")
    bob.expect("*** Nickname Alice is taken")
    bob.send("/nick robert")
    bob.expect("*** bob is now known as robert")
    alice.expect("*** bob is now known as robert")
    alice.send("/nick ALICE")  # a new spelling of one's own name is fine
    alice.expect("*** alice is now known as ALICE")
    bob.expect("*** alice is now known as ALICE")
    carol = LineClient(addr)  # the old name is free again
    carol.join("bob", ("ALICE", "robert"))
    carol.send("/who")
    carol.expect("*** In lobby: ALICE, bob, robert")
    carol.close()


# ------------------------------------------------------------------ talking


def test_messages_notices_who_and_quit(two):
    _chat, _addr, alice, bob = two
    bob.send("hello everyone")
    alice.expect("<bob> hello everyone")
    bob.send("/who")
    bob.expect("*** In lobby: alice, bob")  # not "<bob> hello everyone": no echo to the sender
    alice.send("/me waves")
    bob.expect("* alice waves")
    bob.send("//etc/passwd is a path")  # // says a line that starts with /
    alice.expect("<bob> /etc/passwd is a path")
    bob.send("/quit")
    bob.expect("*** Bye!")
    assert bob.rest() == b""  # and the connection is closed
    alice.expect("*** bob left lobby")


def test_quit_message_is_passed_on(two):
    _chat, _addr, alice, bob = two
    bob.send("/quit see you\x07")
    bob.expect("*** Bye!")
    alice.expect("*** bob left lobby (quit: see you^G)")


def test_help_lists_every_command(two):
    _chat, _addr, alice, _bob = two
    alice.send("/help")
    alice.expect("*** Commands:")
    text = "\n".join(alice.readline() for _ in range(8))
    for command in ("/who", "/rooms", "/join ROOM", "/nick NEW", "/me", "/quit", "/help"):
        assert command in text
    alice.send("/frobnicate")
    alice.expect("*** Unknown command /frobnicate; try /help")


def test_rooms_keep_their_talk_to_themselves(two):
    _chat, _addr, alice, bob = two
    bob.send("/join games")
    bob.expect("*** You are in games, alone")
    alice.expect("*** bob left lobby (joined games)")
    alice.send("/rooms")
    alice.expect("*** Rooms: games (1), lobby (1)")
    alice.send("only for the lobby")
    alice.sync()  # handled: bob would have it queued before his next reply
    bob.send("/who")
    bob.expect("*** In games: bob")
    alice.send("/who games")
    alice.expect("*** In games: bob")
    alice.send("/join #games")
    alice.expect("*** You are in games, with bob")
    bob.expect("*** alice joined games")
    alice.send("/join games")
    alice.expect("*** You are already in games")
    bob.send("/join lobby")
    bob.expect("*** You are in lobby, alone")
    bob.expect("<alice> only for the lobby")  # the lobby's history
    alice.expect("*** bob left games (joined lobby)")
    alice.send("/join lobby")
    alice.expect("*** You are in lobby, with bob")
    alice.expect("<alice> only for the lobby")
    alice.send("/rooms")  # the empty room is gone
    alice.expect("*** Rooms: lobby (2)")


def test_the_last_n_messages_are_replayed_on_join(chat_factory):
    chat, addr = chat_factory("--history", "3")
    alice = LineClient(addr)
    chat_factory.clients.append(alice)
    alice.join("alice")
    for i in range(1, 6):
        alice.send(f"message {i}")
    alice.send("/me is done")
    alice.sync()
    bob = LineClient(addr)
    chat_factory.clients.append(bob)
    bob.join("bob", ("alice",))
    bob.expect("<alice> message 4")
    bob.expect("<alice> message 5")
    bob.expect("* alice is done")
    bob.sync()  # nothing more was replayed


def test_history_size_from_the_environment(chat_factory):
    chat, addr = chat_factory(env={"NETTOOLS_HISTORY": "1"})
    alice = LineClient(addr)
    chat_factory.clients.append(alice)
    alice.join("alice")
    alice.send("old")
    alice.send("new")
    alice.sync()
    bob = LineClient(addr)
    chat_factory.clients.append(bob)
    bob.join("bob", ("alice",))
    bob.expect("<alice> new")
    bob.sync()


def test_control_characters_are_shown_as_text(two):
    _chat, _addr, alice, bob = two
    alice.send(b"clear\x1b[2J\x1b]0;title\x07 bell\x07 del\x7f cr\rnul\x00 c1\xc2\x9b bad\xff\r")
    line = bob.file.readline()
    assert line == (
        "<alice> clear^[[2J^[]0;title^G bell^G del^? cr^Mnul^@ c1\\x9b bad\ufffd\n"
    ).encode()
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", line)
    alice.send("/me \x1bc")
    bob.expect("* alice ^[c")


def test_an_overlong_line_disconnects_only_that_client(chat_factory):
    chat, addr = chat_factory("--max-line", "32")
    alice = LineClient(addr)
    bob = LineClient(addr)
    chat_factory.clients.extend([alice, bob])
    alice.join("alice")
    bob.join("bob", ("alice",))
    alice.expect("*** bob joined lobby")
    bob.send("x" * 32)  # exactly the limit is fine
    alice.expect("<bob> " + "x" * 32)
    bob.send("y" * 33)
    bob.expect("*** Line longer than 32 bytes; disconnecting")
    assert bob.rest() == b""
    alice.expect("*** bob left lobby (line too long)")
    carol = LineClient(addr)  # the server lives on, and the nick is free again
    chat_factory.clients.append(carol)
    carol.join("bob", ("alice",))
    code, _out, err = chat.stop()
    assert code == 0 and stop_summary(err, "chat")["errors"] == 1


def test_a_flooder_is_refused_then_disconnected_and_the_room_gets_little(chat_factory):
    chat, addr = chat_factory("--rate", "5", "--burst", "10")
    alice = LineClient(addr)
    flooder = LineClient(addr)
    chat_factory.clients.extend([alice, flooder])
    alice.join("alice")
    flooder.join("flooder", ("alice",))  # its nickname was one line of the burst
    alice.expect("*** flooder joined lobby")
    # 300 short lines in one send: the server reads them all at once, so it
    # ends the connection with nothing unread (no reset to lose the notices).
    flooder.sock.sendall(b"".join(b"spam %d\n" % i for i in range(300)))
    rest = flooder.rest().decode().splitlines()
    assert rest[-1] == "*** Disconnected: flooding (more than 5 lines a second)"
    refusals = rest.count("*** Slow down: at most 5 lines a second; that line was not sent")
    assert refusals >= 20

    spam = 0
    for _ in range(100):
        line = alice.readline()
        if line == "*** flooder left lobby (flooding)":
            break
        assert line.startswith("<flooder> spam "), line
        spam += 1
    else:
        raise AssertionError("the flooder never left")
    # The burst, and what the bucket refilled while the server read the lines.
    assert 9 <= spam < 30
    alice.send("/who")
    alice.expect("*** In lobby: alice")
    code, _out, err = chat.stop()
    assert code == 0
    result = stop_summary(err, "chat")
    assert result["flood_disconnects"] == 1 and result["rate_limited"] == refusals


@pytest.mark.timeout(120)
def test_a_slow_reader_is_not_disconnected_by_someone_elses_flood(chat_factory):
    # A rate limit high enough to let one talker outpace a slow reader for
    # three times the slow timeout.  The reader keeps reading, slowly: it
    # misses lines, and is told how many, but it stays.
    chat, addr = chat_factory("--rate", "1000000", "--burst", "1000000", "--queue-size", "16",
                              "--slow-timeout", "1s", "--send-buffer", "4K", "--history", "0")
    talker = LineClient(addr)
    slow = LineClient(addr, rcvbuf=4096)
    chat_factory.clients.extend([talker, slow])
    talker.join("talker")
    slow.join("slow", ("talker",))
    talker.expect("*** slow joined lobby")

    received = bytearray()
    done = threading.Event()

    def read_slowly() -> None:
        try:
            while not done.is_set():
                data = slow.sock.recv(256)
                if not data:
                    return
                received.extend(data)
                time.sleep(0.005)  # about 50 KB/s at most: far slower than the flood
        except OSError:
            return

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    batch = b"".join(b"flood %d " % i + b"x" * 100 + b"\n" for i in range(50))
    deadline = time.monotonic() + 3.0
    for _ in range(100_000):
        if time.monotonic() > deadline or not reader.is_alive():
            break
        talker.sock.sendall(batch)
    done.set()
    reader.join(IO_TIMEOUT)
    talker.send("/rooms")  # its answer: the server has handled all of the flood
    assert talker.readline().startswith("*** Rooms: ")
    # Still connected, and served.  Its queue may still be full, and a reply
    # that does not fit is dropped too -- then a "read too slowly" notice says
    # so once the queue has drained, and it asks again.
    for _ in range(50):
        slow.send("/rooms")
        line = ""
        while not line.startswith(("*** Rooms: ", "*** You read too slowly")):
            line = slow.file.readline().decode(errors="replace")
            assert line, f"the slow reader was disconnected: {received[-300:]!r}"
            received.extend(line.encode())
        if line.startswith("*** Rooms: "):
            break
    else:
        raise AssertionError("never answered")
    text = received.decode(errors="replace")
    assert "was disconnected" not in text and "Disconnected" not in text
    assert re.search(r"\*\*\* You read too slowly: \d+ message\(s\) were not delivered", text)
    code, _out, err = chat.stop()
    assert code == 0
    result = stop_summary(err, "chat")
    assert result["slow_disconnects"] == 0 and result["dropped"] > 0


def test_a_silent_client_is_disconnected_after_the_idle_timeout(chat_factory):
    chat, addr = chat_factory("--idle-timeout", "300ms")
    alice = LineClient(addr)
    chat_factory.clients.append(alice)
    alice.join("alice")
    # Nothing is sent: the server's timer ends the connection, not a test sleep.
    alice.expect("*** Disconnected: idle for too long")
    assert alice.rest() == b""


def test_chat_on_a_unix_socket(tmp_path: Path):
    path = tmp_path / "chat.sock"
    chat = Chat("--listen", f"unix:{path}")
    try:
        assert chat.ready()["address"] == f"unix:{path}"
        alice = LineClient(str(path), family=socket.AF_UNIX)
        alice.join("alice")
        alice.send("/quit")
        alice.expect("*** Bye!")
        alice.close()
        assert chat.stop()[0] == 0
        assert not path.exists()
    finally:
        chat.__exit__()


# ------------------------------------------------------------------ stopping and errors


def test_sigterm_tells_everyone_drains_and_prints_the_summary(two):
    chat, _addr, alice, bob = two
    alice.send("hi bob")
    bob.expect("<alice> hi bob")
    code, out, err = chat.stop()
    assert code == 0, err
    assert out == "" and "Traceback" not in err
    for c in (alice, bob):
        c.expect("*** Server is shutting down")
        assert c.rest() == b""
    result = stop_summary(err, "chat")
    assert result["connections"] == 2 and result["active"] == 0
    assert result["messages"] == 1 and result["errors"] == 0
    assert result["bytes_in"] == len(b"alice\nbob\nhi bob\n")
    assert result["bytes_out"] > 0


def test_ready_file(tmp_path: Path):
    ready = tmp_path / "ready"
    chat = Chat("--ready-file", str(ready))
    try:
        event = chat.ready()
        assert json.loads(ready.read_text()) == event
        assert chat.stop()[0] == 0
    finally:
        chat.__exit__()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--listen", "127.0.0.1:65536"], "65536"),
        (["--slow-timeout", "soon"], "invalid duration"),
        (["--queue-size", "0"], "--queue-size"),
        (["--history", "-1"], "--history"),
        (["--max-line", "0"], "--max-line"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, fragment):
    res = run_cli("chat", *args)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], res.stderr


def test_port_in_use_exits_1_with_one_line():
    with socket.socket() as holder:
        holder.bind((LOCAL, 0))
        holder.listen()
        port = holder.getsockname()[1]
        res = run_cli("chat", "--listen", f"{LOCAL}:{port}")
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "address already in use" in lines[0]


def test_help_documents_the_slow_client_policy():
    res = run_cli("chat", "--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "Example: nettools chat" in text
    assert "reads nothing for --slow-timeout" in text and "--queue-size" in text
    assert "--rate lines a second" in text and "flooding" in text
    assert "nettools chat --listen" in run_cli("--help").stdout


# ------------------------------------------------------------------ many clients, one stuck

N_CLIENTS = 200
N_SENDERS = 10
BATCH = 20
MAX_BATCHES = 300


@pytest.mark.timeout(180)
def test_200_clients_get_every_message_in_order_and_a_stuck_one_is_dropped(chat_factory):
    chat, addr = chat_factory(
        "--slow-timeout", "500ms", "--queue-size", "16", "--send-buffer", "4K", "--history", "0",
        "--rate", "100000", "--burst", "100000",  # the senders talk fast, by design
    )
    observer_nick, closer_nick = "u000", f"u{N_CLIENTS - 2:03d}"
    kick_notice = "*** stuck was disconnected (too slow)"
    end_line = f"<{closer_nick}> END"
    seen: dict[str, list[str]] = {}
    failures: list[str] = []
    stuck_joined, kicked = threading.Event(), threading.Event()
    progress = threading.Condition()
    observed = [0]  # messages the observer has received

    def collect(c: LineClient) -> None:
        """Read everything ``c`` gets until the end (each reader in its own thread)."""
        lines: list[str] = []
        try:
            while True:
                line = c.readline()
                lines.append(line)
                if c.nick == observer_nick:
                    if line == "*** stuck joined lobby":
                        stuck_joined.set()
                    elif line == kick_notice:
                        kicked.set()
                    elif line.startswith("<"):
                        with progress:
                            observed[0] += 1
                            progress.notify_all()
                if line == end_line or (c.nick == closer_nick and line.startswith("*** In ")):
                    break
        except Exception as exc:  # reported by the main thread
            failures.append(f"{c.nick}: {exc!r}")
            with progress:
                progress.notify_all()
        seen[c.nick] = lines

    readers: list[LineClient] = []
    threads: list[threading.Thread] = []
    for i in range(N_CLIENTS - 1):
        c = LineClient(addr)
        chat_factory.clients.append(c)
        c.join(f"u{i:03d}", tuple(r.nick for r in readers))
        readers.append(c)
        # Readers read from the start: the join notices of the later ones are
        # hundreds of tiny lines, and a client that leaves them unread is slow.
        threads.append(threading.Thread(target=collect, args=(c,), daemon=True))
        threads[-1].start()
    observer, senders, closer = readers[0], readers[1 : 1 + N_SENDERS], readers[-1]
    # The stuck client: a tiny receive window, and it never reads a byte.
    stuck = LineClient(addr, rcvbuf=1024)
    chat_factory.clients.append(stuck)
    stuck.send("stuck")
    assert stuck_joined.wait(IO_TIMEOUT)  # in the room: it gets what is said from now on

    sent = 0
    for _ in range(MAX_BATCHES):
        for _ in range(BATCH):
            sender = senders[sent % N_SENDERS]
            sender.send(f"m{sent:05d} from {sender.nick} " + "x" * 60)
            sent += 1
        # Pace by what the observer has read, so readers never fall behind.
        with progress:
            assert progress.wait_for(lambda n=sent: observed[0] >= n or failures, IO_TIMEOUT)
        assert not failures, failures[:5]
        if kicked.wait(0.02):
            break
    assert kicked.is_set(), f"the stuck client was not dropped after {sent} messages"
    closer.send("END")
    closer.send("/who")
    for t in threads:
        t.join(120)
    assert not failures, failures[:5]
    assert len(seen) == len(readers)

    def events(lines: list[str]) -> list[str]:
        return [line for line in lines if line.startswith("<") or line == kick_notice]

    reference = events(seen[observer.nick])
    messages = [line for line in reference if line.startswith("<")]
    assert len(messages) == sent + 1  # every message, and END
    assert len(set(messages)) == len(messages)
    assert reference.count(kick_notice) == 1
    by_sender: dict[str, list[int]] = defaultdict(list)
    for line in messages[:-1]:
        nick, number = line[1:].split("> m")[0], int(line.split("> m")[1][:5])
        by_sender[nick].append(number)
    assert set(by_sender) == {s.nick for s in senders}
    for numbers in by_sender.values():
        assert numbers == sorted(numbers)  # each sender's messages in the order sent
    for c in readers:
        own = f"<{c.nick}> "
        expected = [line for line in reference if not line.startswith(own)]
        assert events(seen[c.nick]) == expected, f"{c.nick} saw another order"
        notices = [line for line in seen[c.nick] if "read too slowly" in line]
        assert not notices, f"{c.nick}: {notices}"
    who = seen[closer.nick][-1]
    assert "stuck" not in who and len(who.split(", ")) == N_CLIENTS - 1

    # The stuck client was cut off: it reaches EOF, long before the END message.
    rest = stuck.rest()
    assert b"END" not in rest
    code, _out, err = chat.stop()
    assert code == 0, err
    result = stop_summary(err, "chat")
    assert result["slow_disconnects"] == 1
    assert result["connections"] == N_CLIENTS


# ------------------------------------------------------------------ the CI recipe


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_ci_echo_chat_recipe(tmp_path: Path):
    res = subprocess.run(
        ["bash", str(ROOT / "recipes" / "ci-echo-chat.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean_env({"NETTOOLS": f"{sys.executable} -m nettools"}),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ci-echo-chat: ok" in res.stdout
