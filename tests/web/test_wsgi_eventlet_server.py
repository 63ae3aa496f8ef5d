"""eventlet's ``wsgi.server()`` as eventlet programs drive it: killed
from another greenthread, it closes idle keep-alive connections and lets a
request in flight finish before the kill goes on; header names Capitalized by
default; and ``wsgi.input``'s ``100 Continue`` with headers, sent on the first
read even when the body came along already."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from helpers.wsgi import drain_on_stop, gated_app, read_all

import nettools
from nettools.kernel.greenthread import kill, spawn
from nettools.kernel.sync import Event
from nettools.kernel.timeout import Timeout
from nettools.web import wsgi


def test_killing_the_server_greenthread_closes_idle_and_drains_busy():
    app, gate = gated_app()
    listener = nettools.listen(("127.0.0.1", 0))
    gt = spawn(wsgi.server, listener, app, log_output=False)
    killed = []

    def still_serving() -> None:
        assert not gt.dead  # the server waits for the request in flight

    drain_on_stop(listener.getsockname()[1], lambda: killed.append(spawn(kill, gt)), gate,
                  still_serving)  # fmt: skip
    with Timeout(10):
        killed[0].wait()
    assert gt.dead


def _serve(app, **kwargs):
    """``wsgi.server`` on a fresh listener in a greenthread; (port, greenthread)."""
    listener = nettools.listen(("127.0.0.1", 0))
    kwargs.setdefault("log_output", False)
    gt = spawn(wsgi.server, listener, app, **kwargs)
    return listener.getsockname()[1], gt


def _head(reader) -> list[bytes]:
    lines = []
    while (line := reader.readline()) not in (b"\r\n", b""):
        lines.append(line.rstrip(b"\r\n"))
    return lines


@contextlib.contextmanager
def _answer(app, request: bytes) -> Iterator[Any]:
    """``wsgi.server`` serving ``app`` sent ``request``: a reader of the answer
    (within a 10 s timeout)."""
    port, gt = _serve(app)
    sock = nettools.connect(("127.0.0.1", port))
    try:
        sock.sendall(request)
        with Timeout(10):
            yield sock.makefile("rb")
    finally:
        sock.close()
        kill(gt)


def test_100_continue_goes_out_on_the_first_read_even_with_the_body_there():
    def app(environ, start_response):
        environ["wsgi.input"].set_hundred_continue_response_headers([("x-phase", "one")])
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    request = (b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n"
               b"Expect: 100-continue\r\n\r\ntesting")  # the body without waiting  # fmt: skip
    with _answer(app, request) as reader:
        assert _head(reader) == [b"HTTP/1.1 100 Continue", b"X-Phase: one"]
        assert _head(reader)[0] == b"HTTP/1.1 200 OK"
        assert reader.read(7) == b"testing"


def test_the_application_may_send_another_100_continue():
    def app(environ, start_response):
        body = environ["wsgi.input"].read()
        environ["wsgi.input"].set_hundred_continue_response_headers([("X-Phase", "two")])
        environ["wsgi.input"].send_hundred_continue_response()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    request = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok"
    with _answer(app, request) as reader:
        assert _head(reader) == [b"HTTP/1.1 100 Continue"]
        assert _head(reader) == [b"HTTP/1.1 100 Continue", b"X-Phase: two"]
        assert _head(reader)[0] == b"HTTP/1.1 200 OK"
        assert reader.read(2) == b"ok"


def _header_names(port: int) -> list[bytes]:
    sock = nettools.connect(("127.0.0.1", port))
    reader = sock.makefile("rb")
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with Timeout(10):
        head = _head(reader)
    sock.close()
    return [line.split(b":")[0] for line in head[1:]]


def _weird_app(environ, start_response):
    start_response("200 OK", [("sOMe-WEirD", "cAsE"), ("wiTH-\xdf-LATIN1-\xff", "chars")])
    return [b""]


def test_server_capitalizes_header_names_as_eventlet_does():
    port, gt = _serve(_weird_app)
    try:
        names = _header_names(port)
    finally:
        kill(gt)
    assert b"Some-Weird" in names and "With-\xdf-Latin1-\xff".encode("latin-1") in names


def test_server_keeps_the_case_when_told_and_wsgiserver_by_default():
    port, gt = _serve(_weird_app, capitalize_response_headers=False)
    try:
        assert b"sOMe-WEirD" in _header_names(port)
    finally:
        kill(gt)
    srv = wsgi.WSGIServer(nettools.listen(("127.0.0.1", 0)), _weird_app, log_output=False)
    srv.start()
    try:
        assert b"sOMe-WEirD" in _header_names(srv.address[1])
    finally:
        srv.stop(0)


def _raw_get(port: int) -> bytes:
    sock = nettools.connect(("127.0.0.1", port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with Timeout(10):
        data = read_all(sock)
    sock.close()
    return data


def _served_once(app, **kwargs) -> bytes:
    """What ``wsgi.server`` answers one GET with, served by ``app``."""
    port, gt = _serve(app, **kwargs)
    try:
        return _raw_get(port)
    finally:
        kill(gt)


def test_server_gathers_a_stream_so_a_late_failure_is_still_a_500():
    import io

    from nettools.kernel.timeout import Timeout as GreenTimeout

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial "
        raise GreenTimeout()  # an application's timeout is its failure

    log = io.StringIO()
    raw = _served_once(app, log=log, log_output=True)
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"partial" not in raw
    assert "Traceback" in log.getvalue() and "Timeout" in log.getvalue()


def test_an_app_may_ask_for_each_piece_to_go_at_once():
    release = Event()

    def stream():
        yield b"first"
        release.wait()
        yield b"second"

    def app(environ, start_response):
        environ["eventlet.minimum_write_chunk_size"] = 0
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream()

    port, gt = _serve(app)
    try:
        sock = nettools.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        with Timeout(10):
            while b"first" not in got:  # arrives while the app still waits
                got += sock.recv(4096)
            release.send()
            got += read_all(sock)
        sock.close()
    finally:
        kill(gt)
    assert got.endswith(b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n")


def test_a_generator_body_is_chunked_and_a_sequence_has_a_length():
    def generator(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b""

    class Sequence:
        def __init__(self, parts):
            self.parts = parts

        def __len__(self):
            return len(self.parts)

        def __iter__(self):
            return iter(self.parts)

    def sequence(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Sequence([b"ab", b"c"])

    raw = _served_once(generator)
    assert b"Transfer-Encoding: chunked\r\n" in raw and raw.endswith(b"\r\n\r\n0\r\n\r\n")
    raw = _served_once(sequence)
    assert b"Content-Length: 3\r\n" in raw and raw.endswith(b"\r\n\r\nabc")


def test_server_says_where_it_listens_and_when_it_exits_as_eventlets_does():
    import io
    import os

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    log = io.StringIO()
    port, gt = _serve(app, log=log, log_output=True)
    nettools.sleep(0)
    assert log.getvalue() == f"({os.getpid()}) wsgi starting up on http://127.0.0.1:{port}\n"
    kill(gt)
    assert log.getvalue().endswith(f"({os.getpid()}) wsgi exited\n")
    quiet = io.StringIO()
    port, gt = _serve(app, log=quiet)  # log_output=False: not a line
    nettools.sleep(0)
    kill(gt)
    assert quiet.getvalue() == ""


def test_closing_on_an_unread_body_that_arrived_does_not_reset_the_response():
    # An HTTP/1.0 client asks for 100 Continue but sends its body at once; the
    # app answers without reading it, so the server closes the connection.  The
    # body already there is dropped first: closing on unread data would reset
    # the connection and could destroy the response before the client reads it.
    body_sent = Event()

    def app(environ, start_response):
        body_sent.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"answer"]

    port, gt = _serve(app)
    try:
        sock = nettools.connect(("127.0.0.1", port))
        sock.sendall(
            b"PUT / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 23\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        nettools.sleep(0)  # the server reads the head and calls the app
        sock.sendall(b"GET /tricksy HTTP/1.1\r\n")
        body_sent.send()
        with Timeout(10):
            raw = read_all(sock)  # a reset would raise ConnectionResetError
        sock.close()
    finally:
        kill(gt)
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b"\r\n\r\nanswer")
    assert b"Connection: close" in raw


def test_a_bad_or_cut_chunked_body_raises_eventlets_chunk_read_error():
    caught = []

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read(1024)
        except wsgi.ChunkReadError as exc:
            caught.append(exc)
        start_response("200 OK", [])
        return [b""]

    port, gt = _serve(app)
    try:
        for body in (b"db\r\n" + b"A" * 0xDB, b"cats\r\nlook here"):  # cut short; malformed
            sock = nettools.connect(("127.0.0.1", port))
            sock.sendall(b"PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
            sock.close()
        with Timeout(10):
            while len(caught) < 2:
                nettools.sleep(0.01)
    finally:
        kill(gt)
    cut = [e for e in caught if isinstance(e, wsgi.ClientDisconnected)]
    bad = [e for e in caught if isinstance(e, wsgi.HTTPError) and e.status == 400]
    assert len(cut) == 1 and len(bad) == 1
