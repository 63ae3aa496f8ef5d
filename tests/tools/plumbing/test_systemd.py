"""systemd: socket activation through Debian's ``systemd-socket-activate``
(LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), and READY=1, STATUS=, WATCHDOG=1 and
STOPPING=1 on a notify socket the test listens on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers.cli import run_cli
from helpers.sockets import Target, echo_handler

pytestmark = pytest.mark.timeout(60)

ACTIVATE = shutil.which("systemd-socket-activate")


def free_port() -> int:
    # systemd-socket-activate takes no port 0: take one the kernel just gave out.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Notifications:
    """A notify socket (a path, or ``@name`` in the abstract namespace), as systemd's."""

    def __init__(self, tmp_path: Path, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"nettools-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = str(tmp_path / "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(20)

    def next(self) -> dict[str, str]:
        """The next message, as its KEY=VALUE lines."""
        message = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in message.splitlines())

    def until(self, key: str) -> dict[str, str]:
        for _ in range(1000):
            message = self.next()
            if key in message:
                return message
        raise AssertionError(f"no {key}")

    def close(self) -> None:
        self.sock.close()


def activate(*args: str, listen: list[int], names: str | None = None,
             env: dict | None = None) -> subprocess.Popen:  # fmt: skip
    """``nettools ARGS`` started by systemd-socket-activate on ``listen``
    ports; it starts nettools at the first connection."""
    if ACTIVATE is None:
        pytest.skip("systemd-socket-activate is not installed (make system-deps)")
    argv = [ACTIVATE]
    for port in listen:
        argv += ["-l", f"127.0.0.1:{port}"]
    if names:
        argv.append(f"--fdname={names}")
    for key, value in (env or {}).items():
        argv += ["-E", f"{key}={value}"]
    argv += [sys.executable, "-m", "nettools", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def kill(proc: subprocess.Popen) -> None:
    """Kill what is left of ``proc`` and its process group (serve's workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def connect(port: int) -> socket.socket:
    """Connect once systemd-socket-activate listens (it has from the start; this
    only waits for the process to get there)."""
    for _ in range(500):
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=15)
        except ConnectionRefusedError:
            time.sleep(0.01)
    raise AssertionError(f"nothing listens on {port}")


def stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out, err


def test_echo_takes_the_passed_socket_and_tells_systemd_how_it_goes(tmp_path):
    notes = Notifications(tmp_path)
    port = free_port()
    proc = activate("echo", "--listen", "systemd:", listen=[port],
                    env={"NOTIFY_SOCKET": notes.address, "WATCHDOG_USEC": "200000"})
    try:
        with connect(port) as client:  # this connection makes it start nettools
            client.sendall(b"activated\n")
            assert client.recv(100) == b"activated\n"  # served on the passed socket
        ready = json.loads(proc.stdout.readline())
        assert ready["address"] == f"127.0.0.1:{port}"
        first = notes.next()
        assert first["READY"] == "1"
        assert first["STATUS"] == f"echo: listening on 127.0.0.1:{port}"
        for _ in range(2):
            assert notes.next() == {"WATCHDOG": "1"}  # pinged from the hub, again and again
        code, _, err = stop(proc)
        assert notes.until("STOPPING")["STATUS"] == "echo: stopping"
        assert code == 0, err
    finally:
        kill(proc)
        notes.close()


def test_forward_takes_its_rules_sockets_by_name(tmp_path):
    ssh, web = Target(echo_handler), Target(lambda conn: conn.sendall(b"web\n"))
    ports = [free_port(), free_port()]
    # The rules in the other order than the sockets: the names decide.
    proc = activate("forward", f"systemd:web:{web.port}", f"systemd:ssh:{ssh.port}",
                    listen=ports, names="ssh:web")  # fmt: skip
    try:
        with connect(ports[0]) as client:
            client.sendall(b"to ssh\n")
            assert client.recv(100) == b"to ssh\n"
        with connect(ports[1]) as client:
            assert client.recv(100) == b"web\n"
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [line["address"] for line in lines] == [f"127.0.0.1:{ports[1]}",
                                                       f"127.0.0.1:{ports[0]}"]
        assert stop(proc)[0] == 0
    finally:
        kill(proc)
        ssh.close()
        web.close()


def test_a_passed_socket_is_found_by_its_address_and_a_missing_name_is_one_line(tmp_path):
    port = free_port()
    proc = activate("chat", "--listen", f"127.0.0.1:{port}", listen=[port])
    try:
        with connect(port) as client:  # binding the port again would fail: it is taken
            assert client.recv(100).startswith(b"*** Welcome to nettools chat!")
        assert stop(proc)[0] == 0
    finally:
        kill(proc)
    port = free_port()
    proc = activate("echo", "--listen", "systemd:nope", listen=[port], names="web")
    connect(port).close()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    ours = [line for line in err.splitlines() if line.startswith("nettools")]
    assert ours == ["nettools echo: cannot listen on systemd:nope: no socket named "
                    "'nope' passed by systemd (LISTEN_FDNAMES: web)"]  # fmt: skip
    assert "Traceback" not in err


def test_serve_workers_share_the_passed_socket(tmp_path):
    app = tmp_path / "sdapp.py"
    app.write_text("import os\n\ndef app(environ, start_response):\n"
                   "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [str(os.getpid()).encode()]\n")  # fmt: skip
    notes = Notifications(tmp_path, abstract=True)
    port = free_port()
    proc = activate("serve", "--chdir", str(tmp_path), "sdapp:app", "--port", str(port),
                    "--workers", "2", listen=[port], env={"NOTIFY_SOCKET": notes.address})
    try:
        # The first connection makes systemd-socket-activate start nettools; the
        # rest wait until both workers listen (one alone could answer them all).
        first = connect(port)
        assert notes.until("READY")["STATUS"] == f"serve: 2 workers listening on 127.0.0.1:{port}"
        pids = set()
        for n in range(200):
            with first if n == 0 else connect(port) as client:
                client.sendall(b"GET / HTTP/1.0\r\n\r\n")
                reply = b""
                while chunk := client.recv(4096):
                    reply += chunk
            pids.add(reply.rpartition(b"\r\n\r\n")[2])
            if len(pids) == 2:
                break
        assert len(pids) == 2  # both workers accept on the one passed socket
        code, _, err = stop(proc)
        assert notes.until("STOPPING")["STOPPING"] == "1"
        assert code == 0, err
    finally:
        kill(proc)
        notes.close()


def test_sockets_passed_to_another_process_are_not_ours():
    # LISTEN_PID names someone else (a parent that did not clear it): fd 3 is not ours.
    res = run_cli("echo", "--listen", "systemd:", env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    assert res.returncode == 1
    assert res.stderr.strip() == ("nettools echo: cannot listen on systemd:: no socket left "
                                  "passed by systemd (LISTEN_FDNAMES: none)")


def test_run_takes_a_passed_socket_and_tells_systemd_how_it_goes(tmp_path):
    notes = Notifications(tmp_path)
    port = free_port()
    file = tmp_path / "run.toml"
    file.write_text('[services.front]\ntype = "echo"\nraw = true\nlisten = "systemd:front"\n'
                    '[services.side]\ntype = "echo"\nraw = true\n')
    proc = activate("run", str(file), listen=[port], names="front",
                    env={"NOTIFY_SOCKET": notes.address, "WATCHDOG_USEC": "200000"})
    try:
        with connect(port) as client:
            client.sendall(b"activated")
            assert client.recv(100) == b"activated"
        first = notes.next()
        assert first["READY"] == "1"
        assert first["STATUS"] == "run: 2 services running (front, side)"
        assert notes.next() == {"WATCHDOG": "1"}
        proc.send_signal(signal.SIGHUP)  # a reload: RELOADING=1, then READY=1 again
        assert notes.until("RELOADING")["STATUS"] == "run: reloading"
        assert notes.until("READY")["STATUS"].startswith("run: 2 services")
        code, _, err = stop(proc)
        assert notes.until("STOPPING")["STATUS"] == "run: stopping"
        assert code == 0, err
    finally:
        kill(proc)
        notes.close()
