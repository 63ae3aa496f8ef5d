"""The WSGI server against raw sockets: pipelining, malformed requests, limits, slowloris."""

from __future__ import annotations

import hashlib
import time

import pytest
from helpers.wsgi import (
    ServerThread,
    connect,
    get,
    hello,
    is_closed,
    read_response,
    recv_until_closed,
)

from nettools.kernel.hub import get_hub

pytestmark = pytest.mark.timeout(30)


def echo_body(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [environ["REQUEST_METHOD"].encode() + b" " + body]


# ------------------------------------------------------------------ pipelining


def test_pipelined_requests_are_answered_in_order():
    with ServerThread(hello) as srv:
        sock = connect(srv.port)
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)))
        f = sock.makefile("rb")
        bodies = [read_response(f).body for _ in range(3)]
        assert bodies == [b"hello /0", b"hello /1", b"hello /2"]
        sock.close()


def test_pipelined_requests_with_bodies_in_one_send():
    with ServerThread(echo_body) as srv:
        sock = connect(srv.port)
        sock.sendall(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
            b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nsec\r\n3\r\nond\r\n0\r\n\r\n"
            b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        f = sock.makefile("rb")
        assert [read_response(f).body for _ in range(3)] == [b"POST first", b"POST second", b"GET "]
        sock.close()


def test_pipelined_requests_already_received_cost_no_hub_switch():
    # Requests that arrived together (one send, so one receive on loopback) are
    # parsed and answered one after the other without going back to the hub:
    # the application sees the hub's switch count unchanged from the first to
    # the last of them.
    switches = []

    def record(environ, start_response):
        switches.append(get_hub().switches)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode() + body]

    requests = []
    for i in range(30):
        if i % 3 == 1:
            requests.append(b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok" % i)
        elif i % 3 == 2:
            requests.append(b"GET /%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
        else:
            requests.append(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
    with ServerThread(record) as srv:
        sock = connect(srv.port)
        sock.sendall(b"".join(requests))
        f = sock.makefile("rb")
        bodies = [read_response(f).body for _ in requests]
        sock.close()
    assert bodies == [b"/%d" % i + (b"ok" if i % 3 == 1 else b"") for i in range(30)]
    assert len(switches) == 30
    assert switches[-1] == switches[0], switches


def test_pipelined_bodies_left_unread_are_skipped():
    def ignore_body(environ, start_response):
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    with ServerThread(ignore_body) as srv:
        sock = connect(srv.port)
        sock.sendall(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
            b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        f = sock.makefile("rb")
        assert [read_response(f).body for _ in range(2)] == [b"/a", b"/b"]
        sock.close()


def test_requests_before_a_malformed_one_are_answered_first():
    with ServerThread(hello) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nBROKEN REQUEST\r\n\r\n")
        f = sock.makefile("rb")
        assert read_response(f).body == b"hello /ok"
        assert read_response(f).status == 400
        assert f.read() == b""


# --------------------------------------------------------- malformed requests


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Name: v\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n bad-fold\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ],
)
def test_malformed_request_gets_400_and_close_and_the_server_lives_on(request_bytes):
    with ServerThread(hello) as srv:
        data = get(srv.port, request_bytes)
        assert data.startswith(b"HTTP/1.1 400 "), data
        assert b"Connection: close\r\n" in data
        # The next client is served as usual.
        sock = connect(srv.port)
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock.makefile("rb")).body == b"hello /next"
        sock.close()


def test_on_request_sees_request_keys_only_for_a_request_that_parsed():
    calls = []

    def on_request(environ, status, received, sent, started):
        calls.append((status, {k: environ.get(k, "-") for k in ("REQUEST_METHOD", "RAW_URI")}))

    with ServerThread(hello, on_request=on_request) as srv:
        assert get(srv.port, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert get(srv.port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert calls == [
        ("200 OK", {"REQUEST_METHOD": "GET", "RAW_URI": "/a"}),
        ("400", {"REQUEST_METHOD": "-", "RAW_URI": "-"}),
    ]


def test_malformed_chunked_body_gets_400():
    with ServerThread(echo_body) as srv:
        sock = connect(srv.port)
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n"
        )
        data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 400 "), data
        sock.close()


# ------------------------------------------------------------------- limits


def test_request_line_too_long_gets_414():
    with ServerThread(hello, url_length_limit=1000) as srv:
        data = get(srv.port, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 414 "), data
        # Just under the limit is fine.
        sock = connect(srv.port)
        sock.sendall(b"GET /" + b"a" * 900 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock.makefile("rb")).status == 200
        sock.close()


def test_default_request_line_limit_is_8k():
    with ServerThread(hello) as srv:
        data = get(srv.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 414 "), data


def test_request_line_too_long_arriving_in_pieces_gets_414():
    with ServerThread(hello, url_length_limit=1000) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET /")
        for _ in range(5):
            sock.sendall(b"b" * 300)
            time.sleep(0.01)
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 414 ")
        sock.close()


def test_headers_too_big_get_431():
    with ServerThread(hello, max_header_size=4096) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 5000 + b"\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 431 "), data


def test_default_header_size_limit_is_64k_even_for_one_endless_header():
    with ServerThread(hello) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        # One header value that never ends: the server must not collect it forever.
        try:
            for _ in range(20):
                sock.sendall(b"v" * 8192)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 431 ")
        sock.close()


def test_too_many_headers_get_431():
    with ServerThread(hello, max_headers=20) as srv:
        sock = connect(srv.port)
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 431 ")
        sock.close()
        sock = connect(srv.port)
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(15))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert read_response(sock.makefile("rb")).status == 200
        sock.close()


def test_declared_body_too_big_gets_413_without_running_the_app():
    calls = []

    def app(environ, start_response):
        calls.append(1)
        return hello(environ, start_response)

    with ServerThread(app, max_body_size=1000) as srv:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
        data = get(srv.port, head + b"x" * 100)
        assert data.startswith(b"HTTP/1.1 413 "), data
    assert calls == []


def test_chunked_body_too_big_gets_413():
    with ServerThread(echo_body, max_body_size=1000) as srv:
        sock = connect(srv.port)
        chunk = b"200\r\n" + b"x" * 0x200 + b"\r\n"
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3
        )
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 413 ")
        sock.close()


def test_body_at_the_limit_is_accepted():
    with ServerThread(echo_body, max_body_size=1000) as srv:
        sock = connect(srv.port)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"y" * 1000)
        resp = read_response(sock.makefile("rb"))
        assert resp.status == 200 and resp.body == b"POST " + b"y" * 1000
        sock.close()


# ------------------------------------------------------------------ timeouts


def test_slowloris_gets_408_then_close():
    with ServerThread(hello, header_timeout=0.5) as srv:
        sock = connect(srv.port)
        start = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        # Keep sending header bytes slowly, each well within the timeout, never finishing.
        data = b""
        sock.settimeout(0.1)
        for i in range(40):
            try:
                sock.sendall(b"X-%d: a\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                data = sock.recv(65536)
                break
            except TimeoutError:
                pass
        sock.settimeout(5)
        data += recv_until_closed(sock)
        elapsed = time.monotonic() - start
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert elapsed < 3  # the header timeout counts from the first byte, not per byte
        sock.close()


def test_connection_that_never_sends_is_closed_silently_after_header_timeout():
    with ServerThread(hello, header_timeout=0.3) as srv:
        sock = connect(srv.port)
        assert is_closed(sock, timeout=5)
        sock.close()


@pytest.mark.parametrize("after_a_request", [False, True])
def test_empty_lines_do_not_hold_a_connection_past_the_header_timeout(after_a_request):
    # An empty line every 200 ms, each well within the 500 ms header timeout:
    # the timer runs from the first of them, so the connection is closed (in
    # silence: no request was begun) long before the lines run out -- they
    # neither restart the timer nor fall back to the 75 s keep-alive one.
    with ServerThread(hello, header_timeout=0.5, keepalive=75) as srv:
        sock = connect(srv.port)
        if after_a_request:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock.makefile("rb")).status == 200
        sock.settimeout(0.2)
        closed_after = None
        for sent in range(1, 8):  # fewer than the 8 empty lines allowed
            try:
                sock.sendall(b"\r\n")
                data = sock.recv(100)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                data = b""
            assert data == b""
            closed_after = sent
            break
        assert closed_after is not None, "still open after 7 empty lines over 1.4 s"
        sock.close()


@pytest.mark.parametrize("pieces", [1, 9])
def test_too_many_empty_lines_before_a_request_get_400(pieces):
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with ServerThread(hello) as srv:
        sock = connect(srv.port)
        if pieces == 1:
            sock.sendall(b"\r\n" * 9 + request)
        else:
            for _ in range(9):
                sock.sendall(b"\r\n")
            sock.sendall(request)
        data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 400 "), data
        assert b"more than 8 empty lines" in data
        sock.close()


def test_a_few_empty_lines_before_a_request_are_skipped():
    with ServerThread(hello) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        sock.sendall(b"\r\n" * 8 + b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f).body == b"hello /a"
        sock.sendall(b"\n\r\n" + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f).body == b"hello /b"
        sock.close()


def test_keepalive_idle_timeout_closes():
    with ServerThread(hello, keepalive=0.3) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f).status == 200
        start = time.monotonic()
        assert is_closed(sock, timeout=5)
        assert time.monotonic() - start < 3
        sock.close()


def test_keepalive_false_closes_after_each_response():
    with ServerThread(hello, keepalive=False) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"Connection: close\r\n" in data and data.endswith(b"hello /")


# ---------------------------------------------------- HTTP/1.0 and Connection


def test_http10_without_keepalive_closes():
    with ServerThread(hello) as srv:
        data = get(srv.port, b"GET /x HTTP/1.0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in data and data.endswith(b"hello /x")


def test_http10_with_keepalive_stays_open():
    with ServerThread(hello) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        for i in range(3):
            sock.sendall(b"GET /%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            resp = read_response(f)
            assert resp.header("Connection") == "keep-alive"
            assert resp.body == b"hello /%d" % i
        sock.close()


def test_http10_streamed_body_is_delimited_by_close():
    def stream(environ, start_response):
        start_response("200 OK", [])
        yield b"one "
        yield b"two"

    with ServerThread(stream) as srv:
        data = get(srv.port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert b"Transfer-Encoding" not in data and b"Connection: close\r\n" in data
        assert data.endswith(b"\r\n\r\none two")


@pytest.mark.parametrize(
    ("head", "protocol", "kept"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", "HTTP/1.1", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", "HTTP/1.1", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n", "HTTP/1.1", False),
        (b"GET / HTTP/1.0\r\n", "HTTP/1.0", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n", "HTTP/1.0", True),
        # llhttp honours the old Proxy-Connection as Connection.
        (b"GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n", "HTTP/1.0", True),
        (b"GET / HTTP/2.0\r\n", "HTTP/2.0", False),
    ],
)
def test_protocol_and_keepalive_follow_the_version_and_connection_headers(head, protocol, kept):
    seen = []

    def app(environ, start_response):
        seen.append(environ["SERVER_PROTOCOL"])
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(head + b"\r\n")
        resp = read_response(sock.makefile("rb"))
        assert seen == [protocol]
        assert (resp.header("Connection") != "close") is kept
        assert is_closed(sock, timeout=0.5 if kept else 5) is not kept
        sock.close()


def test_connection_close_from_client_is_honoured():
    with ServerThread(hello) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"Connection: close\r\n" in data and data.endswith(b"hello /")


# -------------------------------------------------------------- 100-continue


def test_expect_100_continue_is_answered_when_the_app_reads():
    def app(environ, start_response):
        digest = hashlib.sha256(environ["wsgi.input"].read()).hexdigest()
        start_response("200 OK", [])
        return [digest.encode()]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        sock.sendall(
            b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"
        )
        assert f.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert f.readline() == b"\r\n"
        sock.sendall(b"hello world")
        resp = read_response(f)
        assert resp.body == hashlib.sha256(b"hello world").hexdigest().encode()
        # The connection is still good for more.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f).status == 200
        sock.close()


def test_expect_100_continue_refused_without_reading_closes():
    def app(environ, start_response):
        start_response("401 Unauthorized", [])
        return [b"no"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(
            b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"
        )
        data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in data
        assert b"Connection: close\r\n" in data
        sock.close()


# ----------------------------------------------------------------- targets


def test_absolute_form_and_asterisk_targets():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [f"{environ['PATH_INFO']}|{environ['QUERY_STRING']}".encode()]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        sock.sendall(b"GET http://example.com/p/q?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        assert read_response(f).body == b"/p/q|x=1"
        sock.sendall(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f).body == b"*|"
        sock.close()


def test_stalled_body_times_out_with_408():
    def app(environ, start_response):
        environ["wsgi.input"].read()
        return hello(environ, start_response)

    with ServerThread(app, socket_timeout=0.3) as srv:
        sock = connect(srv.port)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        start = time.monotonic()
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - start < 3
        sock.close()


def test_a_head_stalled_longer_than_socket_timeout_gets_408_before_header_timeout():
    # socket_timeout bounds each receive of a head arriving in pieces, as each of
    # a body's; header_timeout (60 s here) would be far later.
    with ServerThread(hello, socket_timeout=0.3, header_timeout=60) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 408 ")
        sock.close()


def test_idle_between_requests_is_bounded_by_the_keepalive_timeout_not_the_io_one():
    # The wait for the next request has the keep-alive timeout; once a request
    # is underway, each receive has the (shorter) socket timeout again.
    def app(environ, start_response):
        environ["wsgi.input"].read()
        return hello(environ, start_response)

    with ServerThread(app, keepalive=30, socket_timeout=0.2) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f).status == 200
        time.sleep(0.6)  # idle three times the socket timeout: still open
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        start = time.monotonic()
        assert recv_until_closed(sock).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - start < 3
        sock.close()


def test_max_http_version_10():
    with ServerThread(hello, max_http_version="HTTP/1.0") as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert data.startswith(b"HTTP/1.0 200 OK\r\n") and b"Connection: close\r\n" in data


def test_minimum_chunk_size_gathers_small_pieces():
    def app(environ, start_response):
        start_response("200 OK", [])
        for _ in range(10):
            yield b"abc"

    with ServerThread(app, minimum_chunk_size=8) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(sock)
        assert data.endswith(b"\r\n\r\n9\r\nabcabcabc\r\n9\r\nabcabcabc\r\n9\r\nabcabcabc\r\n"
                             b"3\r\nabc\r\n0\r\n\r\n")
        sock.close()


def test_the_server_counts_why_connections_ended():
    with ServerThread(hello, keepalive=0.3, header_timeout=0.3, url_length_limit=100) as srv:
        idle = connect(srv.port)
        f = idle.makefile("rb")
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f).status == 200
        assert is_closed(idle, timeout=5)  # kept alive, then idle too long
        slow = connect(srv.port)
        slow.sendall(b"GET / HTTP/1.1\r\n")  # a head that never ends
        assert recv_until_closed(slow).startswith(b"HTTP/1.1 408 ")
        long = connect(srv.port)
        long.sendall(b"GET /" + b"x" * 200 + b" HTTP/1.1\r\n\r\n")
        assert recv_until_closed(long).startswith(b"HTTP/1.1 414 ")
        done = connect(srv.port)
        done.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        recv_until_closed(done)
        for sock in (idle, slow, long, done):
            sock.close()
        closed = srv.call(lambda: dict(srv.server.server.closed))
        assert closed == {"idle": 1, "slow": 1, "limit": 1, "client": 1}
