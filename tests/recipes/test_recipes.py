"""Run each recipe as a program against real local servers and clients.

The test side uses only the stdlib (threads and blocking sockets with
timeouts), so the recipes talk to unmodified peers.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import socket
import socketserver
import threading

import pytest
from helpers.chat import LineClient
from helpers.paths import RECIPES
from helpers.recipes import Recipe, run_recipe
from helpers.sockets import recv_all

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


# ----------------------------------------------------------------- helpers


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, plus ``/together/N``: answered only once three such requests
    are in flight at the same time -- proof that the client fetches concurrently."""

    def do_GET(self):
        if self.path.startswith("/together/"):
            try:
                self.server.together.wait()
            except threading.BrokenBarrierError:
                self.send_error(504, "requests were not concurrent")
                return
            body = b"together"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def http_site(tmp_path):
    """A stdlib threaded HTTP server on 127.0.0.1 serving a few pages from tmp_path."""
    pages = {"index.html": b"<h1>home</h1>", "a.html": b"a" * 1234, "big.bin": os.urandom(300_000)}
    for name, body in pages.items():
        (tmp_path / name).write_bytes(body)
    handler = functools.partial(_SiteHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer((LOCAL, 0), handler)
    httpd.together = threading.Barrier(3, timeout=15)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL}:{httpd.server_address[1]}", pages
    finally:
        httpd.shutdown()
        httpd.server_close()


class _UpstreamEcho(socketserver.BaseRequestHandler):
    """Echoes until EOF, then sends a trailer and closes: it only sees the EOF
    if the forwarder passed the client's half-close on."""

    def handle(self):
        self.request.settimeout(20)
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            self.request.sendall(data)
        self.request.sendall(b"<EOF seen>")


@pytest.fixture
def upstream_echo():
    server = socketserver.ThreadingTCPServer((LOCAL, 0), _UpstreamEcho)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address
    finally:
        server.shutdown()
        server.server_close()


def _exchange(addr, data: bytes, results: dict, key) -> None:
    """Send ``data`` from a thread while reading everything back until EOF."""
    with socket.create_connection(addr, timeout=20) as sock:

        def send():
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        results[key] = recv_all(sock)
        sender.join(20)


def _concurrent_exchanges(addr, payloads: list[bytes]) -> dict:
    results: dict = {}
    threads = [
        threading.Thread(target=_exchange, args=(addr, data, results, i))
        for i, data in enumerate(payloads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    return results


# ------------------------------------------------------------------ recipes


def test_every_recipe_has_a_docstring_and_help():
    for name in ("echoserver.py", "connect.py", "forwarder.py", "chat_server.py"):
        source = (RECIPES / name).read_text()
        assert source.startswith('"""'), name
        assert "Run it:" in source, name
        result = run_recipe(name, "--help", timeout=20)
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


def test_echoserver_echoes_for_concurrent_clients_and_stops_on_sigterm():
    with Recipe("echoserver.py", "--host", LOCAL, "--port", "0") as recipe:
        addr = recipe.tcp_address()
        payloads = [os.urandom(n) for n in (1, 70_000, 1 << 20)]
        results = _concurrent_exchanges(addr, payloads)
        assert [results.get(i) for i in range(len(payloads))] == payloads
        code, _out, err = recipe.stop()
        assert code == 0, err
        assert "Traceback" not in err


def test_echoserver_stops_by_itself_after_max_clients():
    with Recipe("echoserver.py", "--port", "0", "--max-clients", "2") as recipe:
        addr = recipe.tcp_address()
        for i in range(2):
            with socket.create_connection(addr, timeout=20) as sock:
                sock.sendall(f"client {i}".encode())
                sock.shutdown(socket.SHUT_WR)
                assert recv_all(sock) == f"client {i}".encode()
        code, _out, err = recipe.wait()
        assert code == 0, err
        assert "served 2 clients" in err


def test_connect_fetches_urls_concurrently_in_order(http_site):
    base, pages = http_site
    holder = socket.socket()  # bound, not listening: connections are refused
    holder.bind((LOCAL, 0))
    with holder:
        refused = f"http://{LOCAL}:{holder.getsockname()[1]}/"
        urls = [f"{base}/a.html", f"{base}/missing", refused, f"{base}/big.bin"]
        result = run_recipe("connect.py", *urls)
    assert result.returncode == 1, result.stderr  # one URL failed
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == urls  # results in the given order
    assert " HTTP/1.0 200 OK " in lines[0]
    assert " 404 " in lines[1]
    assert " error ConnectionRefusedError" in lines[2]
    assert " 200 " in lines[3]
    # The whole response is counted: headers plus the body.
    size = int(lines[3].rsplit("(", 1)[1].split()[0])
    assert size > len(pages["big.bin"])


def test_connect_fetches_concurrently_and_exits_zero_when_all_succeed(http_site):
    base, _ = http_site
    urls = [f"{base}/together/{i}" for i in range(3)] + [f"{base}/index.html"]
    result = run_recipe("connect.py", *urls)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(" 200 " in line for line in lines), lines


def test_webcrawler_fetches_pages_with_import_patched_urllib(http_site):
    base, pages = http_site
    names = ["index.html", "a.html", "big.bin", "missing.html"]
    together = [f"together/{i}" for i in range(3)]  # only served if fetched at once
    urls = [f"{base}/{n}" for n in together + names]
    result = run_recipe("webcrawler.py", "--concurrency", "3", *urls)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [line[2] for line in lines] == urls  # in input order
    assert [line[:2] for line in lines[:3]] == [["200", str(len(b"together"))]] * 3
    for name, (status, size, _url) in zip(names[:3], lines[3:], strict=False):
        assert status == "200" and int(size) == len(pages[name])
    assert lines[6][0] == "404"
    assert "fetched 7 URLs" in result.stderr


def test_forwarder_relays_both_ways_with_half_close(upstream_echo):
    target = f"{upstream_echo[0]}:{upstream_echo[1]}"
    with Recipe("forwarder.py", "--port", "0", "--target", target) as recipe:
        addr = recipe.tcp_address()
        payloads = [os.urandom(n) for n in (0, 5000, 2 << 20)]
        results = _concurrent_exchanges(addr, payloads)
        for i, data in enumerate(payloads):
            got = results.get(i)
            assert got is not None, f"exchange {i} did not finish"
            assert got.endswith(b"<EOF seen>"), "half-close not propagated"
            assert (
                hashlib.sha256(got[: -len(b"<EOF seen>")]).digest() == hashlib.sha256(data).digest()
            )
        code, _out, err = recipe.stop()
        assert code == 0, err
        assert "Traceback" not in err


def test_forwarder_stops_after_max_clients(upstream_echo):
    target = f"{upstream_echo[0]}:{upstream_echo[1]}"
    with Recipe("forwarder.py", "--port", "0", "--target", target, "--max-clients", "1") as recipe:
        addr = recipe.tcp_address()
        results: dict = {}
        _exchange(addr, b"just one", results, 0)
        assert results[0] == b"just one<EOF seen>"
        code, _out, err = recipe.wait()
        assert code == 0, err


def test_chat_server_relays_lines_to_everyone_else():
    with Recipe("chat_server.py", "--port", "0") as recipe:
        addr = recipe.tcp_address()
        clients: list[LineClient] = []
        try:
            for _ in range(3):
                new = LineClient(addr)
                assert new.readline().startswith("* welcome")  # registered now
                for old in clients:
                    assert old.readline() == f"* {new.name} joined"
                clients.append(new)

            for c in clients:
                c.send(f"hello from {c.name}")
            for c in clients:
                expected = {f"{o.name}: hello from {o.name}" for o in clients if o is not c}
                assert {c.readline(), c.readline()} == expected  # never its own line

            leaver = clients.pop(0)
            gone = leaver.name  # its address, while it has one
            leaver.close()
            for c in clients:
                assert c.readline() == f"* {gone} left"

            code, _out, err = recipe.stop()
            assert code == 0, err
            assert "Traceback" not in err
            for c in clients:  # the stop closed the idle chat connections
                rest = c.rest()  # at most notices of the others leaving
                assert all(line.startswith(b"* ") for line in rest.splitlines()), rest
        finally:
            for c in clients:
                c.close()
