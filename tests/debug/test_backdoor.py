"""The backdoor console: concurrent sessions, per-session output, locals, sessions
that wait green, ending one session, and the loopback-only rule."""

from __future__ import annotations

import contextlib
import logging
import re
import sys

import pytest
from helpers.green import settle

import nettools
from nettools import backdoor
from nettools.green import socket

pytestmark = pytest.mark.timeout(30)

PROMPT = b">>> "


class Client:
    """A console client: ``ask(line)`` returns the output up to the next prompt."""

    def __init__(self, addr) -> None:
        family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
        self.sock = nettools.connect(addr, family)
        self.sock.settimeout(10)
        self.buf = b""
        self.banner = self.read_until(PROMPT)

    def read_until(self, marker: bytes) -> str:
        while not self.buf.endswith(marker):
            data = self.sock.recv(4096)
            if not data:
                raise EOFError(f"connection closed; got {self.buf!r}")
            self.buf += data
        out, self.buf = self.buf, b""
        return out[: -len(marker)].decode()

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def ask(self, line: str) -> str:
        self.send(line + "\n")
        return self.read_until(PROMPT).strip()

    def read_to_eof(self) -> bytes:
        data = self.buf
        for _ in range(1000):
            chunk = self.sock.recv(4096)
            if not chunk:
                return data
            data += chunk
        raise AssertionError("server never closed the connection")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def start_backdoor():
    """``start_backdoor(locals)`` serves a backdoor on 127.0.0.1:0; returns its address.
    Kills the server (and so every session) afterwards."""
    servers = []
    clients = []

    def start(locals=None):
        sock = nettools.listen(("127.0.0.1", 0))
        servers.append(nettools.spawn(backdoor.backdoor_server, sock, locals))
        return sock.getsockname()

    def connect(addr) -> Client:
        c = Client(addr)
        clients.append(c)
        return c

    start.connect = connect
    yield start
    for gt in servers:
        gt.kill()
        with contextlib.suppress(nettools.GreenletExit):
            gt.wait()
    for c in clients:
        c.close()
    # The stream routers are gone with the last session.
    assert not backdoor._sessions
    assert not isinstance(sys.stdout, backdoor._Router)
    assert not isinstance(sys.stderr, backdoor._Router)
    assert not isinstance(sys.stdin, backdoor._Router)


def test_two_clients_evaluate_at_once_and_see_locals(start_backdoor):
    addr = start_backdoor({"answer": 42})
    a = start_backdoor.connect(addr)
    b = start_backdoor.connect(addr)
    assert "nettools backdoor" in a.banner
    # the standard console's third line, which eventlet's backdoor clients wait for
    assert a.banner.splitlines()[2] == "(InteractiveConsole)"
    assert a.ask("1+1") == "2"
    assert b.ask("2*3") == "6"
    assert a.ask("answer") == "42"
    assert b.ask("answer + 1") == "43"
    # Names a session binds are its own; the objects in ``locals`` are shared.
    assert a.ask("mine = 'a'") == ""
    assert "NameError" in b.ask("mine")
    assert "ZeroDivisionError" in a.ask("1/0")
    assert a.ask("mine") == "'a'"  # an error does not end the session


def test_output_goes_only_to_the_client_that_ran_the_code(start_backdoor, capsys):
    addr = start_backdoor({"nettools": nettools})
    a = start_backdoor.connect(addr)
    b = start_backdoor.connect(addr)
    # Both loops run at once, yielding to each other between prints.
    a.send("for i in range(3):\n    print('from-a', i); nettools.sleep(0)\n\n")
    b.send("for i in range(3):\n    print('from-b', i); nettools.sleep(0)\n\n")
    out_a = a.read_until(PROMPT)
    out_b = b.read_until(PROMPT)
    assert [ln for ln in out_a.splitlines() if "from" in ln] == [
        "... ... from-a 0",
        "from-a 1",
        "from-a 2",
    ]
    assert "from-b" not in out_a
    assert "from-b 2" in out_b and "from-a" not in out_b
    assert "err-a" in a.ask("import sys; sys.stderr.write('err-a\\n')")
    assert "err-a" not in b.ask("'nothing'")
    captured = capsys.readouterr()
    assert "from-" not in captured.out and "err-a" not in captured.err


def test_input_reads_from_the_session(start_backdoor):
    addr = start_backdoor()
    a = start_backdoor.connect(addr)
    a.send("input('name? ')\n")
    assert a.read_until(b"name? ") == ""
    assert a.ask("bob") == "'bob'"


def test_a_waiting_command_does_not_block_other_clients(start_backdoor):
    gate = nettools.Event()
    addr = start_backdoor({"gate": gate, "nettools": nettools})
    a = start_backdoor.connect(addr)
    b = start_backdoor.connect(addr)
    a.send("nettools.sleep(0.01) or gate.wait()\n")
    assert b.ask("1+1") == "2"
    assert not gate.ready()  # a's command is still running
    assert b.ask("gate.send('released')") == ""
    assert a.read_until(PROMPT).strip() == "'released'"
    assert a.ask("3+4") == "7"


def test_ending_one_session_leaves_the_server_serving(start_backdoor):
    addr = start_backdoor()
    a = start_backdoor.connect(addr)
    b = start_backdoor.connect(addr)
    c = start_backdoor.connect(addr)

    a.sock.shutdown(socket.SHUT_WR)  # Ctrl-D
    a.read_to_eof()
    assert "Ctrl-D" in b.ask("exit")  # the bare name only explains itself
    b.send("exit()\n")
    assert b.read_to_eof() == b""
    c.send("raise SystemExit(3)\n")
    assert c.read_to_eof() == b""

    d = start_backdoor.connect(addr)
    assert d.ask("1+1") == "2"


def test_killing_the_server_closes_sessions(start_backdoor):
    addr = start_backdoor()
    sock = nettools.listen(("127.0.0.1", 0))
    server = nettools.spawn(backdoor.backdoor_server, sock)
    a = Client(sock.getsockname())
    try:
        assert a.ask("1") == "1"
        server.kill()
        assert a.read_to_eof() == b""
        assert sock.fileno() == -1
    finally:
        a.close()
    # Another server is unaffected.
    assert start_backdoor.connect(addr).ask("2") == "2"


def test_backdoor_listens_on_loopback_and_logs_its_address(caplog):
    caplog.set_level(logging.INFO, logger="nettools.backdoor")
    server = nettools.spawn(backdoor.backdoor, ("127.0.0.1", 0), {"answer": 42})
    try:
        settle()  # listening, and parked in accept
        m = re.search(r"backdoor listening on 127\.0\.0\.1:(\d+)", caplog.text)
        assert m, caplog.text
        port = int(m.group(1))
        c = Client(("127.0.0.1", port))
        try:
            assert c.ask("answer") == "42"
        finally:
            c.close()
    finally:
        server.kill()


class FakeListener:
    """Only what the address check looks at; nothing is bound."""

    def __init__(self, family, address) -> None:
        self.family = family
        self.address = address

    def getsockname(self):
        return self.address


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.0.2.1"])
def test_non_loopback_address_is_refused_before_binding(host):
    with pytest.raises(ValueError, match="allow_remote=True"):
        backdoor.backdoor((host, 0))


@pytest.mark.parametrize(
    "family, address",
    [
        (socket.AF_INET, ("0.0.0.0", 4000)),
        (socket.AF_INET, ("10.1.2.3", 4000)),
        (socket.AF_INET6, ("::", 4000, 0, 0)),
        (socket.AF_INET6, ("2001:db8::1", 4000, 0, 0)),
    ],
)
def test_backdoor_server_refuses_a_non_loopback_listener(family, address):
    with pytest.raises(ValueError, match="not a loopback address"):
        backdoor.backdoor_server(FakeListener(family, address))


@pytest.mark.parametrize(
    "family, address",
    [
        (socket.AF_INET, ("127.0.0.1", 4000)),
        (socket.AF_INET, ("127.8.9.10", 4000)),
        (socket.AF_INET6, ("::1", 4000, 0, 0)),
        (socket.AF_INET6, ("::ffff:127.0.0.1", 4000, 0, 0)),
        (socket.AF_UNIX, "/tmp/backdoor.sock"),
    ],
)
def test_loopback_addresses_pass_the_check(family, address):
    backdoor._refuse_remote(family, address, allow_remote=False)


def test_allow_remote_lifts_the_check():
    backdoor._refuse_remote(socket.AF_INET, ("0.0.0.0", 4000), allow_remote=True)


ABSTRACT = "\0nettools-backdoor-test"


@pytest.mark.parametrize("addr", [ABSTRACT, ABSTRACT.encode()])
def test_an_abstract_unix_socket_is_refused_before_binding(addr):
    # An abstract socket has no file, so no permissions: any local user could connect.
    with pytest.raises(ValueError, match="allow_abstract=True"):
        backdoor.backdoor(addr)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with pytest.raises(ConnectionRefusedError):
            probe.connect(ABSTRACT)  # nothing was bound
    finally:
        probe.close()


def test_backdoor_server_refuses_an_abstract_listener():
    sock = nettools.listen(ABSTRACT, socket.AF_UNIX)
    try:
        with pytest.raises(ValueError, match="abstract unix socket"):
            backdoor.backdoor_server(sock)
    finally:
        sock.close()


def answers(addr) -> str:
    """What a console at ``addr`` answers to ``answer``."""
    c = Client(addr)
    try:
        return c.ask("answer")
    finally:
        c.close()


def test_allow_abstract_serves_on_an_abstract_socket():
    server = nettools.spawn(backdoor.backdoor, ABSTRACT, {"answer": 42}, allow_abstract=True)
    try:
        settle()
        assert answers(ABSTRACT) == "42"
    finally:
        server.kill()


def test_a_unix_socket_file_is_created_for_its_owner_only(tmp_path):
    import os
    import stat

    path = str(tmp_path / "backdoor.sock")
    old_umask = os.umask(0)  # what a careless service might run with
    try:
        server = nettools.spawn(backdoor.backdoor, path, {"answer": 42})
        settle()
    finally:
        os.umask(old_umask)
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert answers(path) == "42"
    finally:
        server.kill()
