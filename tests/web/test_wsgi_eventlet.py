"""What eventlet's WSGI applications rely on: posthooks under eventlet's key,
str bodies, RAW_PATH_INFO, and HttpProtocol subclasses."""

from __future__ import annotations

import socket
import threading

import pytest
from helpers.wsgi import (
    Response,
    ServerThread,
    connect,
    drain_on_stop,
    gated_app,
    get,
    read_response,
    recv_until_closed,
)

import nettools
from nettools.web import wsgi


def _get(srv: ServerThread, target: bytes = b"/") -> Response:
    sock = connect(srv.port)
    try:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        return read_response(sock.makefile("rb"))
    finally:
        sock.close()


def test_eventlet_posthooks_run_after_the_response():
    ran = threading.Event()
    seen = []

    def hook(environ, tag, *, more):
        seen.append((environ["PATH_INFO"], tag, more))
        ran.set()

    def app(environ, start_response):
        environ["eventlet.posthooks"].append((hook, ("t",), {"more": 1}))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with ServerThread(app) as srv:
        resp = _get(srv, b"/hooked")
        assert resp.status == 200 and resp.body == b"ok"
        assert ran.wait(10)
    assert seen == [("/hooked", "t", 1)]


def test_eventlet_posthooks_of_a_list_the_app_put_there_run_too():
    ran = threading.Event()

    def app(environ, start_response):
        environ["eventlet.posthooks"] = [(lambda env: ran.set(), (), {})]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        # a chunked body cut short, which the app never reads
        sock.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n20\r\nshort")
        sock.close()
        assert ran.wait(10)


@pytest.mark.parametrize(
    "result",
    [
        lambda: ["hello, ", "world"],  # a list of several str
        lambda: ["hello, world"],  # the one-piece fast path
        lambda: iter(["hello, ", b"world"]),  # an iterable mixing str and bytes
    ],
)
def test_str_bodies_are_sent_as_ascii(result):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return result()

    with ServerThread(app) as srv:
        resp = _get(srv)
    assert resp.status == 200
    assert resp.body == b"hello, world"


def test_str_written_through_write_is_sent():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write("early ")
        return [b"late"]

    with ServerThread(app) as srv:
        assert _get(srv).body == b"early late"


def test_non_ascii_str_body_is_a_500():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["caf\u00e9"]

    with ServerThread(app) as srv:
        assert _get(srv).status == 500


def test_raw_path_info_keeps_the_escapes():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [f"{environ['RAW_PATH_INFO']}|{environ['PATH_INFO']}".encode("latin-1")]

    with ServerThread(app) as srv:
        assert _get(srv, b"/a%20b/c%2Fd?x=1").body == b"/a%20b/c%2Fd|/a b/c/d"


def test_http_protocol_subclass_serves_each_connection():
    class Protocol(wsgi.HttpProtocol):
        capitalize_response_headers = True
        served = 0

        def handle(self, req):
            type(self).served += 1
            return super().handle(req)

    def app(environ, start_response):
        start_response("200 OK", [("x-lower-case", "v")])
        return [b"ok"]

    with ServerThread(app, protocol=Protocol) as srv:
        resp = _get(srv)
    assert resp.body == b"ok"
    assert ("X-Lower-Case", "v") in resp.headers
    assert Protocol.served == 1
    # The base class is left as it was.
    assert wsgi.HttpProtocol.capitalize_response_headers is None


class _GatheringProtocol(wsgi.HttpProtocol):
    minimum_chunk_size = 1 << 20


def _three_pieces(environ, start_response):
    start_response("200 OK", [])
    return iter([b"a", b"b", b"c"])


def test_http_protocol_minimum_chunk_size_gathers_pieces():
    with ServerThread(_three_pieces, protocol=_GatheringProtocol) as srv:
        raw = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # Gathered into one chunk (an iterator's body is chunked, as in eventlet).
    assert raw.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")


def test_the_servers_minimum_chunk_size_wins_over_the_protocols_as_in_eventlet():
    assert wsgi.HttpProtocol.minimum_chunk_size == 4096  # eventlet's, for subclasses to read
    sock = nettools.listen(("127.0.0.1", 0))
    gt = nettools.spawn(
        wsgi.server,
        sock,
        _three_pieces,
        protocol=_GatheringProtocol,
        minimum_chunk_size=1,
        log_output=False,
    )
    try:
        client = nettools.connect(sock.getsockname())
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = recv_until_closed(client)
        client.close()
    finally:
        gt.kill()
    # Each piece at once: the server's 1, not the protocol's 1 MiB.
    assert raw.endswith(b"\r\n\r\n1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n")
    assert _GatheringProtocol.minimum_chunk_size == 1 << 20
    assert wsgi.HttpProtocol.minimum_chunk_size == 4096


def test_protocol_must_be_an_http_protocol():
    with pytest.raises(TypeError, match="HttpProtocol"):
        wsgi.WSGIOptions(protocol=object)


def test_closing_the_listener_stops_the_server_gracefully():
    # eventlet's behaviour (its issue 188): a program that closes its listening
    # socket stops the server; idle keep-alive connections close, a request in
    # flight still gets its whole response.
    import nettools
    from nettools.kernel.timeout import Timeout

    app, gate = gated_app()
    listener = nettools.listen(("127.0.0.1", 0))
    srv = wsgi.WSGIServer(listener, app, log_output=False).start()
    response = drain_on_stop(listener.getsockname()[1], listener.close, gate)
    assert b"Connection: close" in response
    with Timeout(10):
        srv.server.serve_forever()  # returns: the server has stopped
    assert srv.server.stopped


def test_application_errors_go_to_the_log_file_with_their_traceback():
    import io

    logfile = io.StringIO()

    def app(environ, start_response):
        raise KeyError("boom")

    with ServerThread(app, log=logfile, log_output=True) as srv:
        assert _get(srv).status == 500
    text = logfile.getvalue()
    assert "Traceback" in text and "KeyError: 'boom'" in text
    assert '"GET / HTTP/1.1" 500' in text  # and the access line


def test_server_takes_every_eventlet_argument_in_eventlets_order():
    import io

    import nettools
    from nettools.kernel.greenthread import spawn
    from nettools.kernel.pool import GreenPool
    from nettools.kernel.sync import Event

    class Protocol(wsgi.HttpProtocol):
        pass

    def app(environ, start_response):
        start_response("200 OK", [("x-extra", environ["extra.key"])])
        return [b"ok"]

    log = io.StringIO()
    listening = Event()
    sock = nettools.listen(("127.0.0.1", 0))
    args = (
        log,  # log
        {"extra.key": "from environ"},  # environ
        10,  # max_size
        "HTTP/1.1",  # max_http_version
        Protocol,  # protocol
        listening,  # server_event
        1,  # minimum_chunk_size
        False,  # log_x_forwarded_for
        GreenPool(5),  # custom_pool
        5.0,  # keepalive
        True,  # log_output
        "%(method)s %(path)s %(status_code)s",  # log_format
        2048,  # url_length_limit
        False,  # debug
        5.0,  # socket_timeout
        True,  # capitalize_response_headers
    )
    gt = spawn(wsgi.server, sock, app, *args)
    try:
        srv = listening.wait()
        assert isinstance(srv, wsgi.WSGIServer) and srv.protocol is Protocol
        client = nettools.connect(("127.0.0.1", sock.getsockname()[1]))
        client.sendall(b"GET /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := client.recv(4096):
            data += chunk
        client.close()
        assert data.startswith(b"HTTP/1.1 200 OK") and b"X-Extra: from environ" in data
        long = nettools.connect(("127.0.0.1", sock.getsockname()[1]))
        long.sendall(b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert long.recv(4096).startswith(b"HTTP/1.1 414")  # url_length_limit
        long.close()
        assert "GET /p 200" in log.getvalue()
    finally:
        gt.kill()


def test_keepalive_in_seconds_is_announced():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    with ServerThread(app, keepalive=2.5) as srv:
        resp = _get(srv)
        assert resp.header("Connection") == "keep-alive"
        assert resp.header("Keep-Alive") == "timeout=2"
    with ServerThread(app) as srv:  # keepalive=True: HTTP/1.1 needs no header
        resp = _get(srv)
        assert resp.header("Connection") is None and resp.header("Keep-Alive") is None


def test_an_http11_client_that_asks_for_keep_alive_is_answered_so():
    def app(environ, start_response):
        start_response("204 No Content", [])
        return []

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        try:
            f = sock.makefile("rb")
            sock.sendall(b"DELETE /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            asked = read_response(f, head=True)
            sock.sendall(b"DELETE /b HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection
            silent = read_response(f, head=True)
        finally:
            sock.close()
    assert asked.status == 204 and asked.header("Connection") == "keep-alive"
    assert silent.status == 204 and silent.header("Connection") is None


def _environ_lines(environ, start_response):
    start_response("200 OK", [])
    return [f"{key}={value}\n".encode() for key, value in environ.items() if key.isupper()]


def test_a_unix_socket_server_and_its_clients_are_named_unix(tmp_path):
    path = str(tmp_path / "wsgi.sock")
    with ServerThread(_environ_lines, listener=lambda: nettools.listen(path, socket.AF_UNIX)):
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            body = read_response(sock.makefile("rb")).body
        finally:
            sock.close()
    lines = body.decode().splitlines()
    for line in ("SERVER_NAME=unix", "SERVER_PORT=", "REMOTE_ADDR=unix", "REMOTE_PORT="):
        assert line in lines


def test_eventlets_server_gives_the_headers_as_sent():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [repr(environ.get("headers_raw")).encode()]

    request = b"GET / HTTP/1.1\r\nHost: x\r\nx-ANY_k: one\r\nx-ANY_k:  two \r\n\r\n"
    sock = nettools.listen(("127.0.0.1", 0))
    gt = nettools.spawn(wsgi.server, sock, app, log_output=False)
    try:
        client = nettools.connect(sock.getsockname())
        client.sendall(request)
        body = read_response(client.makefile("rb")).body
        client.close()
    finally:
        gt.kill()
    assert body == repr((("Host", "x"), ("x-ANY_k", "one"), ("x-ANY_k", "two"))).encode()
    closing = request.replace(b"Host: x", b"Host: x\r\nConnection: close")
    with ServerThread(app) as srv:  # WSGIServer: only when asked
        assert get(srv.port, closing).endswith(b"None")
    with ServerThread(app, headers_raw=True) as srv:
        assert b"('x-ANY_k', 'two')" in get(srv.port, closing)


def _read_interim(f) -> list[bytes]:
    lines = [f.readline()]
    while lines[-1] not in (b"\r\n", b""):
        lines.append(f.readline())
    return lines


def test_a_second_100_continue_after_a_chunked_body_reads_another_body():
    # OpenStack Swift's multi-phase PUT, as eventlet serves it: the client sends
    # a chunked body, waits for another 100 Continue, then sends another.
    def app(environ, start_response):
        body = environ["wsgi.input"]
        first = body.read()
        body.set_hundred_continue_response_headers([("X-Phase", "2")])
        body.send_hundred_continue_response()
        second = body.read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [first + b"|" + second]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        try:
            f = sock.makefile("rb")
            sock.sendall(
                b"PUT /o HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            assert _read_interim(f)[0].startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(b"5\r\nfirst\r\n0\r\n\r\n")
            interim = _read_interim(f)
            assert interim[0].startswith(b"HTTP/1.1 100 Continue")
            assert b"X-Phase: 2\r\n" in interim
            sock.sendall(b"6\r\nsecond\r\n0\r\n\r\n")
            resp = read_response(f)
            assert resp.status == 200 and resp.body == b"first|second"
            # and the connection goes on with the next request
            sock.sendall(b"PUT /o HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz")
            assert _read_interim(f)[0].startswith(b"HTTP/1.1 100 Continue")
            assert read_response(f).body == b"z|"  # no second body after a sized one
        finally:
            sock.close()


def test_a_100_continue_header_that_would_split_the_response_is_refused():
    def app(environ, start_response):
        body = environ["wsgi.input"]
        body.set_hundred_continue_response_headers([("X-Phase", "1\r\nSet-Cookie: stolen=1")])
        body.read()  # sends the 100 Continue first
        start_response("200 OK", [])
        return [b"read"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        try:
            sock.sendall(
                b"PUT /o HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            data = recv_until_closed(sock)
        finally:
            sock.close()
    assert data.startswith(b"HTTP/1.1 500 ") and b"stolen" not in data


_BOTH_FRAMINGS = (
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n"
)


def _echo_body(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("X-Length", environ.get("CONTENT_LENGTH") or "none")])
    return [body]


def test_both_framings_are_refused_by_default():
    with ServerThread(_echo_body) as srv:
        raw = get(srv.port, _BOTH_FRAMINGS)
    assert raw.startswith(b"HTTP/1.1 400 ")


def test_eventlets_escape_hatch_reads_such_a_request_by_its_transfer_encoding():
    class LegacyClients(wsgi.HttpProtocol):
        reject_bad_requests = False

    with ServerThread(_echo_body, protocol=LegacyClients) as srv:
        raw = get(srv.port, _BOTH_FRAMINGS)  # everything until the server closes
    assert raw.startswith(b"HTTP/1.1 200 OK")
    assert b"X-Length: none" in raw and b"Connection: close" in raw
    assert raw.endswith(b"\r\n\r\nhello")
    assert wsgi.HttpProtocol.reject_bad_requests is True  # the default stays safe
