"""Run one of eventlet's example programs, unmodified, through
``python -m nettools.eventlet``, and talk to it as its users would.

    python eventlet_examples.py EXAMPLES_DIR NAME      # prints one JSON object

The examples listen on fixed ports and some reach for outside hosts
(www.google.com, eventlet.net ...).  So this driver is meant to run inside a
private network namespace (``unshare``: see ``namespace_argv``) whose only
interface is its own loopback and whose /etc/hosts sends those names to
127.0.0.1: nothing can leave the machine, and the fixed ports collide with
nobody.  The local servers standing in for the outside sites run here too.

Each scenario returns what it observed (the test asserts on it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: Outside names the examples use, all sent to this namespace's loopback.
HOSTS = (
    "www.google.com www.yandex.ru www.python.org python.org us.i1.yimg.com "
    "eventlet.net feeds.example"
).split()


def namespace_argv(hosts_file: str) -> list[str]:
    """The command prefix that runs a shell command in a private network and
    mount namespace (loopback up, ``hosts_file`` as /etc/hosts)."""
    script = f'ip link set lo up && mount --bind {hosts_file} /etc/hosts && exec "$@"'
    return ["unshare", "--map-root-user", "--net", "--mount", "sh", "-c", script, "sh"]


# --------------------------------------------------------------------- plumbing


class Example:
    """An example program running under ``python -m nettools.eventlet``."""

    def __init__(self, examples: Path, name: str, env: dict | None = None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nettools.eventlet", str(examples / name)],
            cwd=examples,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_output(self, text: str, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if self.proc.poll() is not None and not self._reader.is_alive():
                return any(text in line for line in self.lines)
            time.sleep(0.02)
        return False

    def finish(self, timeout: float = 30) -> int | None:
        """Wait for the program to end by itself; its exit code (None: killed)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        self.stop()
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)

    @property
    def output(self) -> str:
        return "".join(self.lines)


def connect(port: int, timeout: float = 20) -> socket.socket:
    """Connect to the example once it listens (it takes a moment to start)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def recv_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def http_site(port: int, pages: dict[str, tuple[str, bytes]], tls: Any = None) -> Iterator[None]:
    """A local stand-in for an outside site: path -> (content type, body)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path
            ctype, body = pages.get(path, ("text/plain", b""))
            self.send_response(200 if path in pages else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def http_get(port: int, path: str) -> tuple[int, bytes]:
    sock = connect(port)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -------------------------------------------------------------------- scenarios


def echoserver(ex: Path) -> dict:
    with _running(ex, "echoserver.py") as prog:
        sock = connect(6000)
        echoes = []
        for line in (b"hello\n", b"world\n"):
            sock.sendall(line)  # one line at a time, as typed into telnet
            echoes.append(recv_line(sock).decode())
        sock.close()
        prog.wait_output("client disconnected")
    return {"echoes": echoes, "output": prog.output}


def chat_server(ex: Path) -> dict:
    with _running(ex, "chat_server.py") as prog:
        alice = connect(3001)
        assert prog.wait_output("Participant joined chat.")
        bob = connect(3001)
        for _ in range(200):
            if prog.output.count("Participant joined chat.") == 2:
                break
            time.sleep(0.02)
        alice.sendall(b"hi bob\n")
        bob_got = recv_line(bob).decode()
        alice.settimeout(0.3)
        try:
            alice_got = alice.recv(100).decode()  # nothing: no echo to the sender
        except TimeoutError:
            alice_got = ""
        alice.close()
        prog.wait_output("Participant left chat.")
        bob.close()
    return {"bob_got": bob_got, "alice_got": alice_got, "output": prog.output}


def connect_example(ex: Path) -> dict:
    served = []

    def raw_server() -> None:
        # GET / with no HTTP version: a plain TCP server answers it.
        listener = socket.create_server(("0.0.0.0", 80))
        listener.settimeout(30)
        with listener:
            for _ in range(3):
                conn, _ = listener.accept()
                with conn:
                    served.append(conn.recv(100))
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nlocal site")

    t = threading.Thread(target=raw_server, daemon=True)
    t.start()
    time.sleep(0.1)
    prog = Example(ex, "connect.py")
    code = prog.finish()
    return {"code": code, "requests": [r.decode() for r in served], "output": prog.output}


def webcrawler(ex: Path) -> dict:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("www.google.com")
    ca_file = ex.parent / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    pages = {
        "/intl/en_ALL/images/logo.gif": ("image/gif", b"G" * 1000),
        "/images/python-logo.gif": ("image/gif", b"P" * 2000),
        "/us.yimg.com/i/ww/beta/y3.gif": ("image/gif", b"Y" * 3000),
    }
    with http_site(443, pages, tls=ctx), http_site(80, pages):
        prog = Example(ex, "webcrawler.py", {"SSL_CERT_FILE": str(ca_file)})
        code = prog.finish()
    return {"code": code, "output": prog.output}


def _link_site() -> dict[str, tuple[str, bytes]]:
    # The examples' URL pattern only matches URLs ending in "/" (its POSIX
    # [:punct:] class means something else to Python's re): links end so.
    def page(*links: str) -> tuple[str, bytes]:
        return ("text/plain", "\n".join(links).encode())

    return {
        "/": page("http://eventlet.net/a/", "http://eventlet.net/b/", "http://elsewhere.example/"),
        "/a/": page("http://eventlet.net/b/", "http://eventlet.net/c/"),
        "/b/": page("http://eventlet.net/"),
        "/c/": page(),
    }


def _crawler(ex: Path, name: str) -> dict:
    with http_site(80, _link_site()):
        prog = Example(ex, name)
        code = prog.finish()
    return {"code": code, "output": prog.output}


def recursive_crawler(ex: Path) -> dict:
    return _crawler(ex, "recursive_crawler.py")


def producer_consumer(ex: Path) -> dict:
    return _crawler(ex, "producer_consumer.py")


def feedscraper(ex: Path) -> dict:
    # No feed site is needed: on Python 3 the example hands feedparser the URLs
    # as bytes, which it parses as feed text (see the test).
    with _running(ex, "feedscraper.py") as prog:
        sock = connect(9010)
        body = b"http://feeds.example/a.xml\nhttp://feeds.example/b.xml\n"
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        status_get, _ = http_get(9010, "/")
    head, _, titles = data.partition(b"\r\n\r\n")
    return {
        "status": int(head.split()[1]),
        "titles": titles.decode(),
        "get_status": status_get,
        "output": prog.output,
    }


def forwarder(ex: Path) -> dict:
    listener = socket.create_server(("127.0.0.1", 22))

    def ssh_stand_in() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"SSH-2.0-stand-in\r\n")
            conn.sendall(b"echo:" + recv_line(conn))

    threading.Thread(target=ssh_stand_in, daemon=True).start()
    with _running(ex, "forwarder.py") as prog:
        sock = connect(7000)
        banner = recv_line(sock).decode()
        sock.sendall(b"ping\n")
        reply = recv_line(sock).decode()
        sock.close()
    listener.close()
    return {"banner": banner, "reply": reply, "output": prog.output}


def websocket(ex: Path) -> dict:
    from websockets.sync.client import connect as ws_connect

    with _running(ex, "websocket.py"):
        status, page = http_get(7000, "/")
        with ws_connect("ws://127.0.0.1:7000/data", open_timeout=20) as ws:
            messages = [ws.recv(timeout=10) for _ in range(3)]
    return {"status": status, "page": page.decode()[:200], "messages": messages}


def websocket_chat(ex: Path) -> dict:
    from websockets.sync.client import connect as ws_connect

    with _running(ex, "websocket_chat.py"):
        status, page = http_get(7000, "/")
        with (
            ws_connect("ws://127.0.0.1:7000/chat", open_timeout=20) as b,
            ws_connect("ws://127.0.0.1:7000/chat", open_timeout=20) as a,
        ):
            # b joined first (its handler registered it before a connected):
            # each message goes to both.
            a.send("hello from a")
            a.send("second")
            got_a = [a.recv(timeout=10), a.recv(timeout=10)]
            got_b = [b.recv(timeout=10), b.recv(timeout=10)]
    return {"status": status, "page": page.decode(), "got_a": got_a, "got_b": got_b}


def wsgi(ex: Path) -> dict:
    with _running(ex, "wsgi.py") as prog:
        found = http_get(8090, "/")
        missing = http_get(8090, "/nope")
    return {
        "root": [found[0], found[1].decode()],
        "missing": [missing[0], missing[1].decode()],
        "output": prog.output,
    }


def zmq_simple(ex: Path) -> dict:
    prog = Example(ex, "zmq_simple.py")
    code = prog.finish()
    return {"code": code, "output": prog.output}


def zmq_chat(ex: Path) -> dict:
    with _running(ex, "zmq_chat.py") as prog:
        sock = connect(3001)
        sock.sendall(b"name: bob\n")
        prog.wait_output("Chat: name: bob")
        sock.sendall(b"hello\n")
        prog.wait_output("Chat: hello")
        sock.close()
        prog.wait_output("Participant left chat.")
    return {"output": prog.output}


@contextlib.contextmanager
def _running(ex: Path, name: str) -> Iterator[Example]:
    prog = Example(ex, name)
    try:
        yield prog
    finally:
        prog.stop()


SCENARIOS = {
    "echoserver": echoserver,
    "chat_server": chat_server,
    "connect": connect_example,
    "webcrawler": webcrawler,
    "recursive_crawler": recursive_crawler,
    "producer_consumer": producer_consumer,
    "feedscraper": feedscraper,
    "forwarder": forwarder,
    "websocket": websocket,
    "websocket_chat": websocket_chat,
    "wsgi": wsgi,
    "zmq_simple": zmq_simple,
    "zmq_chat": zmq_chat,
}


if __name__ == "__main__":
    examples_dir, name = Path(sys.argv[1]), sys.argv[2]
    print(json.dumps(SCENARIOS[name](examples_dir)))
