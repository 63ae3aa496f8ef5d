"""``nettools echo`` through the real entry point, with real sockets on loopback."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

from helpers.cli import Cli, run_cli, stop_summary  # noqa: E402
from helpers.sockets import recv_all, recv_exactly  # noqa: E402

LOCAL = "127.0.0.1"
IO_TIMEOUT = 15


def connect(addr: tuple[str, int]) -> socket.socket:
    return socket.create_connection(addr, timeout=IO_TIMEOUT)


def wait_until_refused(addr: tuple[str, int]) -> None:
    """Wait until the server has closed its listener (it got the signal)."""
    for _ in range(500):
        try:
            socket.create_connection(addr, timeout=IO_TIMEOUT).close()
        except (ConnectionRefusedError, ConnectionResetError):
            return  # refused once closed; reset if queued as the listener closed
        select.select([], [], [], 0.02)
    raise AssertionError("the server kept accepting after SIGTERM")


def assert_one_line_error(res: subprocess.CompletedProcess, code: int) -> str:
    assert res.returncode == code, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert res.stdout == ""
    return lines[0]


# ------------------------------------------------------------------ serving


def test_ready_line_names_the_service_and_the_bound_port():
    with Cli("echo") as srv:
        event = srv.ready()
        assert event["service"] == "echo"
        host, _, port = event["address"].rpartition(":")
        assert host == LOCAL and int(port) > 0  # port 0 became a real port
        assert srv.ready_line.endswith("\n")
        assert srv.stop()[0] == 0


def test_tcp_line_mode_echoes_complete_lines_and_drops_an_unfinished_one():
    with Cli("echo") as srv:
        addr = srv.tcp_address()
        with connect(addr) as sock:
            sock.sendall(b"hel")
            sock.sendall(b"lo\nwor")
            assert recv_exactly(sock, 6) == b"hello\n"
            sock.sendall(b"ld\nno newline")
            assert recv_exactly(sock, 6) == b"world\n"
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b""  # a line without its newline is not echoed
        code, _out, err = srv.stop()
        assert code == 0, err


def test_raw_mode_echoes_bytes_as_they_come():
    with Cli("echo", "--raw") as srv:
        addr = srv.tcp_address()
        with connect(addr) as sock:
            sock.sendall(b"no newline")
            assert recv_exactly(sock, 10) == b"no newline"  # line mode would wait
            payload = os.urandom(100_000)
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == payload
        code, _out, err = srv.stop()
        assert code == 0, err
        assert stop_summary(err, "echo")["bytes_out"] == 100_010


def test_udp_echoes_datagrams():
    with Cli("echo", "--udp") as srv:
        addr = srv.tcp_address()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(IO_TIMEOUT)
            for payload in (b"ping", b"x" * 1400):
                sock.sendto(payload, addr)
                data, peer = sock.recvfrom(65535)
                assert (data, peer) == (payload, addr)
        code, _out, err = srv.stop()
        assert code == 0, err
        assert stop_summary(err, "echo")["bytes_in"] == 1404


def test_unix_socket_echo(tmp_path: Path):
    path = tmp_path / "echo.sock"
    with Cli("echo", "--listen", f"unix:{path}") as srv:
        assert srv.ready()["address"] == f"unix:{path}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(IO_TIMEOUT)
            sock.connect(str(path))
            sock.sendall(b"over unix\n")
            assert recv_exactly(sock, 10) == b"over unix\n"
        code, _out, err = srv.stop()
        assert code == 0, err
        assert not path.exists()  # a clean exit removes the socket file


def test_overlong_line_closes_that_client_with_an_error_and_the_server_lives_on():
    with Cli("echo", "--max-line", "16") as srv:
        addr = srv.tcp_address()
        with connect(addr) as sock:
            sock.sendall(b"x" * 16 + b"\n" + b"y" * 40 + b"\n")
            assert recv_all(sock) == b"x" * 16 + b"\nerror: line longer than 16 bytes\n"
        with connect(addr) as sock:  # the next client is served as usual
            sock.sendall(b"still here\n")
            assert recv_exactly(sock, 11) == b"still here\n"
        code, _out, err = srv.stop()
        assert code == 0, err
        assert stop_summary(err, "echo")["errors"] == 1


def test_ready_file_gets_the_same_line(tmp_path: Path):
    ready = tmp_path / "ready.json"
    with Cli("echo", "--ready-file", str(ready)) as srv:
        srv.ready()
        assert ready.read_text() == srv.ready_line
        assert srv.stop()[0] == 0


def test_environment_variable_sets_an_option():
    with Cli("echo", env={"NETTOOLS_MAX_LINE": "8"}) as srv:
        addr = srv.tcp_address()
        with connect(addr) as sock:
            sock.sendall(b"12345678\n123456789\n")
            assert recv_all(sock) == b"12345678\nerror: line longer than 8 bytes\n"
        assert srv.stop()[0] == 0


# ------------------------------------------------------------------ exit codes


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--listen", "127.0.0.1:70000"], "70000"),
        (["--listen", "localhost:http"], "invalid port"),
        (["--idle-timeout", "5 parsecs"], "invalid duration"),
        (["--max-line", "lots"], "invalid size"),
        (["--max-conns", "0"], "--max-conns"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_arguments_are_a_usage_error_in_one_line(args, fragment):
    line = assert_one_line_error(run_cli("echo", *args), 2)
    assert fragment in line


def test_bad_environment_value_is_a_usage_error():
    line = assert_one_line_error(run_cli("echo", env={"NETTOOLS_LISTEN": "127.0.0.1:99999"}), 2)
    assert "99999" in line and "NETTOOLS_LISTEN" in line


def test_port_in_use_is_a_runtime_error_in_one_line():
    with socket.socket() as holder:
        holder.bind((LOCAL, 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = assert_one_line_error(run_cli("echo", "--listen", f"{LOCAL}:{port}"), 1)
    assert "address already in use" in line and str(port) in line


def test_udp_port_in_use_is_a_runtime_error_in_one_line():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind((LOCAL, 0))
        port = holder.getsockname()[1]
        line = assert_one_line_error(run_cli("echo", "--udp", "--listen", f"{LOCAL}:{port}"), 1)
    assert "address already in use" in line


# ------------------------------------------------------------------ stopping


def test_sigterm_lets_an_in_flight_client_finish_then_prints_the_summary():
    with Cli("echo", "--drain-timeout", "20s") as srv:
        addr = srv.tcp_address()
        with connect(addr) as sock:
            sock.sendall(b"first\n")
            assert recv_exactly(sock, 6) == b"first\n"
            srv.proc.send_signal(signal.SIGTERM)
            wait_until_refused(addr)  # stopped accepting...
            sock.sendall(b"second\n")  # ...but still serves the client it has
            assert recv_exactly(sock, 7) == b"second\n"
            assert srv.proc.poll() is None  # draining waits for this client
        code, out, err = srv.wait()
    assert code == 0, err
    assert out == ""  # the ready line was already read; nothing else on stdout
    assert "Traceback" not in err
    result = stop_summary(err, "echo")
    assert result["service"] == "echo"
    assert result["connections"] >= 1  # the probes in wait_until_refused count too
    assert result["bytes_in"] == result["bytes_out"] == len(b"first\nsecond\n")
    assert result["errors"] == 0 and result["active"] == 0


def test_drain_is_bounded_by_the_drain_timeout():
    with Cli("echo", "--drain-timeout", "300ms") as srv:
        addr = srv.tcp_address()
        with connect(addr) as sock:
            sock.sendall(b"hi\n")
            assert recv_exactly(sock, 3) == b"hi\n"
            # The client stays connected and silent: only the timeout ends the drain.
            code, _out, err = srv.stop()
            assert recv_all(sock) == b""
    assert code == 0, err
    assert stop_summary(err, "echo")["connections"] == 1
