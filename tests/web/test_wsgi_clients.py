"""Unmodified third-party clients (requests, urllib3) against the WSGI server.

The server runs on its own hub in a background thread; the clients are the
real, unpatched libraries in the test's thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading

import pytest
import requests
import urllib3
from helpers.tls import Certs
from helpers.wsgi import ServerThread, hello

import nettools

pytestmark = pytest.mark.timeout(60)

# No proxy may sit between the clients and 127.0.0.1.
NO_PROXY = {"http": None, "https": None}


@pytest.fixture
def session():
    with requests.Session() as s:
        s.trust_env = False  # ignore proxy settings from the environment
        yield s


class PeerRecorder:
    """A WSGI app that remembers which client connections it saw."""

    def __init__(self) -> None:
        self.peers: list[str] = []

    def __call__(self, environ, start_response):
        self.peers.append(environ["REMOTE_PORT"])
        return hello(environ, start_response)


def hashing_app(environ, start_response):
    """Reads the body in 64 KiB pieces and answers its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    read = environ["wsgi.input"].read
    while chunk := read(65536):
        digest.update(chunk)
        size += len(chunk)
    body = f"{size} {digest.hexdigest()} {environ.get('CONTENT_LENGTH', '-')} " \
           f"{environ.get('HTTP_TRANSFER_ENCODING', '-')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Peak resident memory of this process while the ``with`` block runs."""

    def __enter__(self) -> RssSampler:
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


# ----------------------------------------------------------------- keep-alive


def test_requests_session_reuses_one_connection(session):
    app = PeerRecorder()
    with ServerThread(app) as srv:
        for i in range(5):
            resp = session.get(f"{srv.url}/r{i}", proxies=NO_PROXY, timeout=10)
            assert resp.status_code == 200 and resp.text == f"hello /r{i}"
            assert "close" not in resp.headers.get("Connection", "")
    assert len(app.peers) == 5 and len(set(app.peers)) == 1


def test_urllib3_pool_reuses_one_connection():
    app = PeerRecorder()
    with ServerThread(app) as srv:
        with urllib3.HTTPConnectionPool("127.0.0.1", srv.port, maxsize=1) as pool:
            for i in range(5):
                resp = pool.request("GET", f"/u{i}", timeout=10)
                assert resp.status == 200 and resp.data == f"hello /u{i}".encode()
            assert pool.num_connections == 1
    assert len(app.peers) == 5 and len(set(app.peers)) == 1


# ------------------------------------------------------------- request bodies


def test_chunked_upload_from_a_generator_is_streamed_to_the_app(session):
    pieces = [os.urandom(1000 + i * 7919) for i in range(40)]
    expected = hashlib.sha256(b"".join(pieces)).hexdigest()
    with ServerThread(hashing_app) as srv:
        resp = session.post(srv.url, data=iter(pieces), proxies=NO_PROXY, timeout=20)
    size, digest, length, encoding = resp.text.split()
    assert (int(size), digest) == (sum(map(len, pieces)), expected)
    assert length == "-" and encoding == "chunked"


def test_expect_100_continue_with_urllib3():
    body = os.urandom(300_000)
    with ServerThread(hashing_app) as srv:
        with urllib3.HTTPConnectionPool("127.0.0.1", srv.port) as pool:
            for _ in range(2):  # and the connection stays usable
                resp = pool.request(
                    "PUT", "/", body=body, headers={"Expect": "100-continue"}, timeout=10
                )
                assert resp.status == 200
                assert resp.data.split()[:2] == [
                    str(len(body)).encode(),
                    hashlib.sha256(body).hexdigest().encode(),
                ]
            assert pool.num_connections == 1


@pytest.mark.timeout(120)
def test_200_mib_upload_is_streamed_with_bounded_memory():
    piece = os.urandom(1 << 20)
    count = 200
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(piece)

    def body():
        for _ in range(count):
            yield piece

    with ServerThread(hashing_app) as srv:
        with RssSampler() as rss, urllib3.HTTPConnectionPool("127.0.0.1", srv.port) as pool:
            # A declared length this time: the body is not chunked.
            resp = pool.request(
                "POST",
                "/",
                body=body(),
                headers={"Content-Length": str(count * len(piece))},
                timeout=100,
            )
    assert resp.status == 200
    size, digest, length, _ = resp.data.decode().split()
    assert int(size) == count * len(piece) and length == str(count * len(piece))
    assert digest == expected.hexdigest()
    assert rss.growth < 48 << 20, f"memory grew by {rss.growth >> 20} MiB"


# ------------------------------------------------------------- file_wrapper


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "payload.bin"
    data = os.urandom(1 << 20) * 24  # 24 MiB
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest(), len(data)


def file_app(path):
    def app(environ, start_response):
        f = open(path, "rb")  # noqa: SIM115 - the server closes it through the wrapper
        if environ["PATH_INFO"] == "/tail":
            f.seek(1000)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 65536)

    return app


def test_file_wrapper_download_uses_sendfile(session, big_file, monkeypatch):
    path, digest, size = big_file
    calls = []
    real_sendfile = os.sendfile

    def counting_sendfile(*args):
        calls.append(args)
        return real_sendfile(*args)

    monkeypatch.setattr(os, "sendfile", counting_sendfile)
    with ServerThread(file_app(path)) as srv:
        resp = session.get(srv.url, proxies=NO_PROXY, timeout=30, stream=True)
        assert resp.headers["Content-Length"] == str(size)
        got = hashlib.sha256()
        for chunk in resp.iter_content(1 << 16):
            got.update(chunk)
        assert got.hexdigest() == digest
        # From the file's current position, on the same connection.
        resp = session.get(f"{srv.url}/tail", proxies=NO_PROXY, timeout=30)
        assert len(resp.content) == size - 1000
        assert resp.content == path.read_bytes()[1000:]
    assert calls, "the body did not go out through os.sendfile"


def test_head_of_a_file_sends_no_body(session, big_file):
    path, _, size = big_file
    with ServerThread(file_app(path)) as srv:
        resp = session.head(srv.url, proxies=NO_PROXY, timeout=10)
        assert resp.headers["Content-Length"] == str(size) and resp.content == b""
        assert session.get(f"{srv.url}/tail", proxies=NO_PROXY, timeout=30).status_code == 200


# -------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls():
    """A test CA and a stdlib server context holding a certificate it issued."""
    certs = Certs()
    return certs, certs.server_context(green=False)


def test_tls_with_requests_keepalive_and_scheme(session, tls, tmp_path):
    certs, server_ctx = tls
    ca_file = certs.write(tmp_path).ca
    seen = []

    def app(environ, start_response):
        seen.append((environ["wsgi.url_scheme"], environ["REMOTE_PORT"]))
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"tls:" + body]

    with ServerThread(app, ssl_context=server_ctx) as srv:
        url = f"https://127.0.0.1:{srv.port}/"
        for i in range(3):
            resp = session.post(url, data=b"x" * i, verify=str(ca_file), proxies=NO_PROXY,
                                timeout=10)
            assert resp.text == "tls:" + "x" * i
    assert {scheme for scheme, _ in seen} == {"https"}
    assert len({port for _, port in seen}) == 1


def test_tls_file_download_and_chunked_upload(session, tls, tmp_path, big_file):
    certs, server_ctx = tls
    ca_file = certs.write(tmp_path).ca
    path, digest, size = big_file

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            return hashing_app(environ, start_response)
        return file_app(path)(environ, start_response)

    with ServerThread(app, ssl_context=server_ctx) as srv:
        url = f"https://127.0.0.1:{srv.port}/"
        resp = session.get(url, verify=str(ca_file), proxies=NO_PROXY, timeout=30)
        assert hashlib.sha256(resp.content).hexdigest() == digest
        pieces = [os.urandom(50_000) for _ in range(10)]
        resp = session.post(url, data=iter(pieces), verify=str(ca_file), proxies=NO_PROXY,
                            timeout=30)
        assert resp.text.split()[1] == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_tls_on_a_listener_wrapped_with_wrap_ssl(session, tls, tmp_path):
    certs, _ = tls
    ca_file, cert_file, key_file = certs.write(tmp_path)
    seen = []

    def app(environ, start_response):
        seen.append(environ["wsgi.url_scheme"])
        return hello(environ, start_response)

    def make_listener():
        return nettools.wrap_ssl(nettools.listen(("127.0.0.1", 0)), certfile=str(cert_file),
                                 keyfile=str(key_file), server_side=True)

    with ServerThread(app, listener=make_listener) as srv:
        resp = session.get(f"https://127.0.0.1:{srv.port}/w", verify=str(ca_file),
                           proxies=NO_PROXY, timeout=10)
        assert resp.text == "hello /w"
    assert seen == ["https"]


def test_tls_client_that_never_handshakes_does_not_block_others(session, tls, tmp_path):
    import socket

    certs, server_ctx = tls
    ca_file = certs.write(tmp_path).ca
    with ServerThread(hello, ssl_context=server_ctx) as srv:
        stalled = socket.create_connection(("127.0.0.1", srv.port))
        # Within 5 s, half the 10 s the stalled handshake may last: had it held
        # the server up, this request would time out.
        resp = session.get(f"https://127.0.0.1:{srv.port}/ok", verify=str(ca_file),
                           proxies=NO_PROXY, timeout=5)
        assert resp.text == "hello /ok"
        stalled.close()


def test_tls_graceful_stop_closes_idle_connections_cleanly(tls, caplog):
    import socket

    certs, server_ctx = tls
    client_ctx = certs.client_context()
    with caplog.at_level(logging.WARNING, logger="nettools"):
        with ServerThread(hello, ssl_context=server_ctx) as srv:
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            conn = client_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            f = conn.makefile("rb")
            assert f.readline() == b"HTTP/1.1 200 OK\r\n"
            while f.readline() != b"\r\n":
                pass
            assert f.read(7) == b"hello /"
            # No drain deadline: had the stop waited for the idle connection to
            # end, the client would hold it for ever.  It is closed at once.
            srv.stop(timeout=None, wait=False)
            assert conn.recv(10) == b""  # within the socket's 10 s, or TimeoutError
            srv.thread.join(10)
            assert not srv.thread.is_alive()  # the stop finished, the client still holding on
            conn.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_tls_malformed_request_gets_400(tls, caplog):
    import socket

    certs, server_ctx = tls
    client_ctx = certs.client_context()
    with caplog.at_level(logging.WARNING, logger="nettools"):
        with ServerThread(hello, ssl_context=server_ctx) as srv:
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            conn = client_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            conn.sendall(b"NONSENSE\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.1 400 ")
            conn.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
