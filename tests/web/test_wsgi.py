"""nettools.web.wsgi: PEP 3333 details, responses, posthooks, graceful stop, access log,
the takeover contract, and the hello-world recipe."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
import urllib.request

import pytest
from helpers.recipes import Recipe
from helpers.wsgi import (
    ServerThread,
    connect,
    get,
    hello,
    is_closed,
    read_response,
    recv_until_closed,
)

import nettools
from nettools.kernel.hub import get_hub
from nettools.web import wsgi

pytestmark = pytest.mark.timeout(30)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ------------------------------------------------------------------- environ


def test_environ_follows_pep_3333():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        seen["body"] = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        local_port = sock.getsockname()[1]
        sock.sendall(
            b"POST /caf%C3%A9/a%2Fb?q=%C3%A9&x=1 HTTP/1.1\r\n"
            b"Host: example.com:8080\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: 5\r\n"
            b"X-Multi: one\r\n"
            b"X-Multi: two\r\n"
            b"Cookie: a=1\r\n"
            b"Cookie: b=2\r\n"
            b"X_Spoofed: dropped\r\n"
            b"X-Latin: \xe9t\xe9 \r\n"
            b"Connection: close\r\n\r\nhello"
        )
        assert recv_until_closed(sock).endswith(b"\r\n\r\nok")
        sock.close()

        assert seen["REQUEST_METHOD"] == "POST"
        assert seen["SCRIPT_NAME"] == ""
        # Percent-decoded, and the bytes as latin-1 (PEP 3333's "bytes in a str").
        assert seen["PATH_INFO"] == "/caf\xc3\xa9/a/b"
        assert seen["QUERY_STRING"] == "q=%C3%A9&x=1"
        assert seen["RAW_URI"] == "/caf%C3%A9/a%2Fb?q=%C3%A9&x=1"
        assert seen["SERVER_NAME"] == "127.0.0.1"
        assert seen["SERVER_PORT"] == str(srv.port)
        assert seen["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert seen["REMOTE_ADDR"] == "127.0.0.1"
        assert seen["REMOTE_PORT"] == str(local_port)
        assert seen["CONTENT_TYPE"] == "text/plain"
        assert seen["CONTENT_LENGTH"] == "5"
        assert "HTTP_CONTENT_TYPE" not in seen and "HTTP_CONTENT_LENGTH" not in seen
        assert seen["HTTP_HOST"] == "example.com:8080"
        assert seen["HTTP_X_MULTI"] == "one,two"
        assert seen["HTTP_COOKIE"] == "a=1; b=2"
        assert "HTTP_X_SPOOFED" not in seen  # '_' in a name could impersonate '-'
        assert seen["HTTP_X_LATIN"] == "\xe9t\xe9"
        assert seen["body"] == b"hello"
        assert seen["wsgi.version"] == (1, 0)
        assert seen["wsgi.url_scheme"] == "http"
        assert seen["wsgi.errors"] is sys.stderr
        assert seen["wsgi.multithread"] is True  # greenthreads run requests concurrently
        assert seen["wsgi.multiprocess"] is False
        assert seen["wsgi.run_once"] is False
        assert seen["wsgi.file_wrapper"] is wsgi.FileWrapper
        assert seen["nettools.server"] is srv.server
        assert callable(seen["nettools.takeover"]) and callable(seen["nettools.set_idle"])
        assert seen["nettools.posthooks"] == []
        # Every CGI-style value is a native string.
        for key, value in seen.items():
            if key.isupper():
                assert type(value) is str, key


def test_environ_extra_keys_and_missing_optional_ones():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return []

    with ServerThread(app, environ={"app.name": "demo"}) as srv:
        get(srv.port, b"GET / HTTP/1.0\r\n\r\n")
    assert seen["app.name"] == "demo"
    assert seen["PATH_INFO"] == "/" and seen["QUERY_STRING"] == ""
    assert seen["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "CONTENT_TYPE" not in seen and "CONTENT_LENGTH" not in seen
    assert seen["wsgi.input"].read() == b""


def test_wsgi_input_read_readline_iteration():
    seen = {}

    def app(environ, start_response):
        inp = environ["wsgi.input"]
        seen["first"] = inp.readline()
        seen["limited"] = inp.readline(3)
        seen["some"] = inp.read(4)
        seen["rest"] = list(inp)
        seen["eof"] = inp.read()
        start_response("200 OK", [])
        return [b"done"]

    with ServerThread(app) as srv:
        body = b"line one\nline two\nthree\nfour"
        get(srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert seen == {
        "first": b"line one\n",
        "limited": b"lin",
        "some": b"e tw",
        "rest": [b"o\n", b"three\n", b"four"],
        "eof": b"",
    }


# -------------------------------------------------------------- responses


def test_start_response_exc_info_replaces_headers_before_they_are_sent():
    def app(environ, start_response):
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Oops", [("X-Second", "2")], sys.exc_info())
        return [b"recovered"]

    with ServerThread(app) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 Oops\r\n")
    assert b"X-Second: 2" in data and b"X-First" not in data
    assert data.endswith(b"recovered")


def test_start_response_exc_info_after_headers_sent_reraises_and_closes():
    raised = []

    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"partial")
        try:
            raise ValueError("boom")
        except ValueError:
            try:
                start_response("500 Oops", [], sys.exc_info())
            except ValueError as exc:
                raised.append(exc)
                raise

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)  # closed, not kept alive
        sock.close()
    assert len(raised) == 1
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"partial" in data
    assert not data.endswith(b"0\r\n\r\n")  # the chunked body was never terminated


def test_start_response_twice_without_exc_info_is_an_error():
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b"x"]

    with ServerThread(app) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 ")


def test_app_exception_gives_500_and_the_server_lives_on(caplog):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("app bug")
        return hello(environ, start_response)

    with caplog.at_level(logging.ERROR, logger="nettools.web.wsgi"):
        with ServerThread(app) as srv:
            data = get(srv.port, b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
            assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert b"app bug" not in data  # no traceback unless debug=True
            assert get(srv.port, b"GET /ok HTTP/1.0\r\n\r\n").endswith(b"hello /ok")
    assert any("app bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_debug_shows_the_traceback():
    def app(environ, start_response):
        raise RuntimeError("visible bug")

    with ServerThread(app, debug=True) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 ") and b"visible bug" in data


def test_write_callable_streams_chunked():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one,")
        write(b"two,")
        return [b"three"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        for _ in range(2):
            resp = read_response(f)
            assert resp.header("Transfer-Encoding") == "chunked"
            assert resp.body == b"one,two,three"
        sock.close()


def test_generator_body_is_chunked_and_empty_pieces_are_skipped():
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b""
        yield b"a"
        yield b""
        yield b"bc"

    with ServerThread(app) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Transfer-Encoding: chunked\r\n" in data
    assert data.endswith(b"\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n")


def test_declared_content_length_is_kept():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "6")])
        yield b"abc"
        yield b"def"

    with ServerThread(app) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Content-Length: 6\r\n" in data and b"Transfer-Encoding" not in data
    assert data.endswith(b"\r\n\r\nabcdef")


def test_list_of_many_pieces_gets_a_content_length():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"a" * 1000, b"b" * 300_000, b"c"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        f = sock.makefile("rb")
        for _ in range(2):
            resp = read_response(f)
            assert resp.header("Content-Length") == "301001"
            assert resp.body == b"a" * 1000 + b"b" * 300_000 + b"c"
        sock.close()


def test_close_is_called_on_the_iterable():
    closed = threading.Event()

    class Body:
        def __iter__(self):
            yield b"body"

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    with ServerThread(app) as srv:
        assert get(srv.port, b"GET / HTTP/1.0\r\n\r\n").endswith(b"body")
        assert closed.wait(5)


def test_close_is_called_when_iteration_fails():
    closed = threading.Event()

    class Body:
        def __iter__(self):
            yield b"body"
            raise RuntimeError("mid-body failure")

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    with ServerThread(app) as srv:
        get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed.wait(5)


def test_head_has_no_body_but_the_length():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"twelve bytes"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = read_response(f, head=True)
        assert head.header("Content-Length") == "12"
        resp = read_response(f)  # would be garbled had HEAD sent a body
        assert resp.body == b"twelve bytes"
        sock.close()


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_204_and_304_have_no_body(status):
    def app(environ, start_response):
        start_response(status, [("ETag", '"x"')])
        return [b"ignored body"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = read_response(f)
        assert resp.status == int(status[:3])
        assert resp.header("Content-Length") is None
        assert resp.header("Transfer-Encoding") is None
        assert read_response(f).status == int(status[:3])
        sock.close()


def test_header_injection_is_refused():
    def app(environ, start_response):
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: stolen=1")])
        return [b"x"]

    with ServerThread(app) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 ") and b"stolen" not in data


def test_date_header_and_capitalize_option():
    def app(environ, start_response):
        start_response("200 OK", [("x-custom-name", "v")])
        return [b""]

    with ServerThread(app, capitalize_response_headers=True) as srv:
        data = get(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"\r\nX-Custom-Name: v\r\n" in data and b"\r\nDate: " in data


def test_a_head_built_before_is_reused_only_where_it_is_the_same_text():
    # Heads are built once per distinct status and headers: values that compare
    # equal but format differently (1, True, 1.0), the server's capitalize
    # option and its HTTP version each still get their own.
    values = [1, True, 1.0, "1"]

    def app(environ, start_response):
        value = values[int(environ["PATH_INFO"][1:])]
        start_response("200 OK", [("x-custom-name", "v"), ("X-N", value)])
        return [b"ok"]

    def heads(count=4, **options):
        with ServerThread(app, **options) as srv:
            sock = connect(srv.port)
            f = sock.makefile("rb")
            seen = []
            for i in range(count):
                sock.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
                seen.append(f.readline())
                seen.append(dict(read_response_headers(f)))
            sock.close()
            return seen

    plain = heads()
    assert plain[0] == b"HTTP/1.1 200 OK\r\n"
    assert [h["X-N"] for h in plain[1::2]] == ["1", "True", "1.0", "1"]
    assert all(h["x-custom-name"] == "v" for h in plain[1::2])
    capitalized = heads(capitalize_response_headers=True)
    assert all(h["X-Custom-Name"] == "v" for h in capitalized[1::2])
    assert heads(1, max_http_version="HTTP/1.0")[0] == b"HTTP/1.0 200 OK\r\n"


def test_a_repeated_head_is_sent_again_only_for_the_same_response():
    # Keep-alive responses reuse the last head (all but Date) when the status,
    # headers and length repeat: each variation below must still get its own.
    def app(environ, start_response):
        path = environ["PATH_INFO"]
        headers = [("Content-Type", "text/plain")]
        if path == "/dated":
            headers.append(("Date", "Mon, 01 Jan 2001 00:00:00 GMT"))
        start_response("404 Not Found" if path == "/missing" else "200 OK", headers)
        return [b"abc" if path == "/long" else b"ab"]

    def exchange(f, sock, request):
        sock.sendall(request)
        status = f.readline()
        headers = dict(read_response_headers(f, 0))
        length = int(headers.get("Content-Length", 0))
        return status, headers, f.read(length) if b"HEAD" not in request[:4] else b""

    with ServerThread(app, keepalive=30) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        seen = [
            exchange(f, sock, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            for path in (b"/", b"/", b"/missing", b"/", b"/long", b"/", b"/dated", b"/dated", b"/")
        ]
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert f.readline() == b"HTTP/1.1 200 OK\r\n"
        head = dict(read_response_headers(f, 0))
        assert head["Content-Length"] == "2"
        last = exchange(f, sock, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert f.read() == b""  # nothing after the body: not even the HEAD's
        sock.close()
    statuses = [status for status, _, _ in seen]
    ok, missing = b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 404 Not Found\r\n"
    assert statuses == [ok, ok, missing, ok, ok, ok, ok, ok, ok]
    assert [body for _, _, body in seen] == [b"ab"] * 4 + [b"abc"] + [b"ab"] * 4
    assert [h["Content-Length"] for _, h, _ in seen] == ["2"] * 4 + ["3"] + ["2"] * 4
    assert [h["Date"] == "Mon, 01 Jan 2001 00:00:00 GMT" for _, h, _ in seen] == [
        False, False, False, False, False, False, True, True, False
    ]  # fmt: skip
    assert all(h["Connection"] == "keep-alive" for _, h, _ in seen)
    assert last[0] == b"HTTP/1.1 200 OK\r\n" and last[2] == b"ab"
    assert last[1]["Connection"] == "close"


def test_a_repeated_head_says_keep_alive_back_only_to_a_client_that_asked():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ab"]

    asked = b"Connection: keep-alive\r\n"
    with ServerThread(app) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        said = []
        for extra in (b"", b"", asked, asked, b""):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n%b\r\n" % extra)
            assert f.readline() == b"HTTP/1.1 200 OK\r\n"
            said.append(dict(read_response_headers(f)).get("Connection"))
        sock.close()
    assert said == [None, None, "keep-alive", "keep-alive", None]


def test_a_repeated_head_with_its_own_content_length_still_guards_the_length():
    # The application declares Content-Length: a later body of another length
    # with the same headers is cut to it, and the connection then closes.
    bodies = iter([b"ab", b"ab", b"abc"])

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [next(bodies)]

    with ServerThread(app, keepalive=30) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        for last in (False, False, True):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert f.readline() == b"HTTP/1.1 200 OK\r\n"
            headers = dict(read_response_headers(f, 0))
            assert headers["Content-Length"] == "2"
            assert headers["Connection"] == ("close" if last else "keep-alive")
            assert f.read(2) == b"ab"
        assert f.read() == b""
        sock.close()


def test_a_repeated_head_with_a_body_larger_than_the_socket_buffer_goes_out_whole():
    # The second response reuses the first one's head and is sent by the C call
    # first: what that leaves must follow in order.
    body = bytes(range(256)) * (64 << 10)  # 16 MiB: more than a socket buffer takes

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert f.readline() == b"HTTP/1.1 200 OK\r\n"
            headers = dict(read_response_headers(f, 0))
            assert headers["Content-Length"] == str(len(body))
            assert f.read(len(body)) == body
        sock.close()


def test_a_repeated_target_gets_its_own_environ_keys_each_time():
    # The keys a target yields are remembered per target: an application that
    # changes its environ must not change the next request's.
    seen = []

    def app(environ, start_response):
        seen.append((environ["PATH_INFO"], environ["QUERY_STRING"], environ["RAW_URI"]))
        environ["PATH_INFO"] = "/changed"
        environ["QUERY_STRING"] = "changed"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        f = sock.makefile("rb")
        for target in (b"/a%20b?x=1", b"/a%20b?x=1", b"/c", b"/a%20b?x=1"):
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target)
            assert f.readline() == b"HTTP/1.1 200 OK\r\n"
            read_response_headers(f)
        sock.close()
    first = ("/a b", "x=1", "/a%20b?x=1")
    assert seen == [first, first, ("/c", "", "/c"), first]


def read_response_headers(f, body: int = 2) -> list[tuple[str, str]]:
    """The header lines after a status line, as pairs; then a body of ``body`` bytes is read."""
    pairs = []
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        pairs.append((name, value.strip()))
    f.read(body)
    return pairs


def test_file_wrapper_falls_back_to_reading_for_non_files():
    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 100_000), 4096)

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock.makefile("rb")).body == b"x" * 100_000
        sock.close()


# -------------------------------------------------------------- posthooks


def test_posthooks_run_after_the_response():
    events = []

    def hook(environ, *args, **kwargs):
        events.append(("hook", environ["PATH_INFO"], args, kwargs))

    def app(environ, start_response):
        environ["nettools.posthooks"].append(hook)
        environ["nettools.posthooks"].append((hook, (1, 2), {"k": "v"}))
        start_response("200 OK", [])

        def body():
            yield b"a"
            events.append(("body sent",))

        return body()

    with ServerThread(app) as srv:
        assert get(srv.port, b"GET /p HTTP/1.0\r\n\r\n").endswith(b"a")
        assert wait_for(lambda: len(events) == 3)
    assert events == [("body sent",), ("hook", "/p", (), {}), ("hook", "/p", (1, 2), {"k": "v"})]


def test_posthooks_run_when_the_client_left():
    ran = threading.Event()
    started = threading.Event()

    def app(environ, start_response):
        environ["nettools.posthooks"].append(lambda env: ran.set())
        start_response("200 OK", [])

        def body():
            started.set()
            for _ in range(200):
                nettools.sleep(0.02)
                yield b"x" * 65536

        return body()

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5)
        sock.close()  # leave mid-response
        assert ran.wait(10)


def test_a_failing_posthook_is_logged_and_the_others_still_run(caplog):
    ran = threading.Event()

    def bad(environ):
        raise RuntimeError("hook bug")

    def app(environ, start_response):
        environ["nettools.posthooks"].extend([bad, lambda env: ran.set()])
        return hello(environ, start_response)

    with caplog.at_level(logging.ERROR, logger="nettools.web.wsgi"):
        with ServerThread(app) as srv:
            assert get(srv.port, b"GET / HTTP/1.0\r\n\r\n").endswith(b"hello /")
            assert ran.wait(5)
    assert any("posthook" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------- graceful stop


def test_graceful_stop_finishes_in_flight_request_with_connection_close():
    started = threading.Event()

    def slow(environ, start_response):
        started.set()
        nettools.sleep(0.5)
        return hello(environ, start_response)

    with ServerThread(slow) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5)
        srv.stop(timeout=10, wait=False)
        f = sock.makefile("rb")
        resp = read_response(f)
        assert resp.status == 200 and resp.body == b"hello /slow"
        assert resp.header("Connection") == "close"
        assert f.read() == b""
        sock.close()
        srv.thread.join(10)
        assert not srv.thread.is_alive()


def test_graceful_stop_closes_idle_keepalive_connections_at_once():
    with ServerThread(hello) as srv:
        idle = []
        for _ in range(3):
            sock = connect(srv.port)
            f = sock.makefile("rb")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(f).status == 200
            idle.append(sock)
        fresh = connect(srv.port)  # connected, never sent anything
        assert wait_for(lambda: srv.connections() == 4)
        start = time.monotonic()
        srv.stop(timeout=20)
        assert time.monotonic() - start < 3  # not the drain timeout
        for sock in [*idle, fresh]:
            assert is_closed(sock, timeout=2)
            sock.close()


def test_graceful_stop_with_busy_and_idle_connections():
    started = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            started.set()
            nettools.sleep(0.6)
        return hello(environ, start_response)

    with ServerThread(app) as srv:
        idle = connect(srv.port)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle.makefile("rb")).status == 200
        busy = connect(srv.port)
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5)
        srv.stop(timeout=10, wait=False)
        assert is_closed(idle, timeout=0.4)  # closed while the slow one still runs
        resp = read_response(busy.makefile("rb"))
        assert resp.body == b"hello /slow" and resp.header("Connection") == "close"
        srv.thread.join(10)
        idle.close()
        busy.close()


def test_graceful_stop_is_bounded_by_its_timeout():
    started = threading.Event()

    def stuck(environ, start_response):
        started.set()
        nettools.sleep(60)
        return hello(environ, start_response)

    with ServerThread(stuck) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5)
        start = time.monotonic()
        srv.stop(timeout=0.3)
        assert time.monotonic() - start < 5
        assert is_closed(sock, timeout=2)
        sock.close()
        with pytest.raises(OSError):
            connect(srv.port, timeout=1).sendall(b"GET / HTTP/1.1\r\n\r\n" * 1000)


def test_server_function_blocks_until_stopped():
    box = {}

    def run():
        box["hub"] = get_hub()
        sock = nettools.listen(("127.0.0.1", 0))
        box["port"] = sock.getsockname()[1]
        event = nettools.Event()
        nettools.spawn(lambda: box.setdefault("srv", event.wait()))
        wsgi.server(sock, hello, log_output=False, server_event=event)
        box["returned"] = True

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert wait_for(lambda: "srv" in box)
    assert isinstance(box["srv"], wsgi.WSGIServer)
    assert get(box["port"], b"GET /f HTTP/1.0\r\n\r\n").endswith(b"hello /f")
    assert "returned" not in box
    # Stop it from its own thread's hub, as a signal handler would.
    box["hub"].run_callback_threadsafe(lambda: nettools.spawn(box["srv"].stop, 1))
    thread.join(10)
    assert box.get("returned") is True


def test_server_function_stops_gracefully_on_ctrl_c(run_script):
    res = run_script(
        """
import os
import signal

import nettools
from nettools.web import wsgi

def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]

listening = nettools.Event()
# Ctrl-C once it listens: KeyboardInterrupt reaches server() in the main greenlet.
nettools.spawn(lambda: (listening.wait(), os.kill(os.getpid(), signal.SIGINT)))
wsgi.server(nettools.listen(("127.0.0.1", 0)), app, log_output=False,
            server_event=listening, drain_timeout=5)
print("returned")
"""
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "returned\n"
    assert "Traceback" not in res.stderr


# --------------------------------------------------------------- access log


def test_access_log_default_format():
    log = io.StringIO()
    with ServerThread(hello, log=log, log_output=True) as srv:
        get(
            srv.port,
            b"GET /logged?x=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: tester/1\r\n"
            b"Referer: http://ref/\r\nConnection: close\r\n\r\n",
        )
        assert wait_for(lambda: log.getvalue().endswith("\n"))
    line = log.getvalue().splitlines()[0]
    assert line.startswith("127.0.0.1 - - [")
    assert '"GET /logged?x=1 HTTP/1.1" 200 13 "http://ref/" "tester/1" ' in line
    float(line.rsplit(" ", 1)[1])


def test_access_log_custom_format_to_a_logger():
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("test.wsgi.access")
    logger.setLevel(logging.INFO)
    logger.addHandler(Collect())
    fmt = "%(method)s %(path)s %(status_code)s %(body_length)s %(client_ip)s"
    with ServerThread(hello, log=logger, log_format=fmt, log_output=True) as srv:
        get(srv.port, b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\n"
            b"Connection: close\r\n\r\n")
        assert wait_for(lambda: records)
    assert records == ["GET /a 200 8 10.0.0.1,127.0.0.1"]


def test_no_access_log_when_off():
    log = io.StringIO()
    with ServerThread(hello, log=log, log_output=False) as srv:
        get(srv.port, b"GET / HTTP/1.0\r\n\r\n")
    assert log.getvalue() == ""


# ----------------------------------------------------------------- takeover


def test_takeover_after_upgrade_gets_socket_and_pipelined_leftover():
    box = {}
    hooks = threading.Event()

    def app(environ, start_response):
        environ["nettools.posthooks"].append(lambda env: hooks.set())
        sock, leftover = environ["nettools.takeover"]()
        box["leftover"] = leftover
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\nRAW:" + leftover)
        data = sock.recv(100)  # the app owns the connection now
        sock.sendall(b"ECHO:" + data)
        return [b"must not be sent"]

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"
            b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        expected = (
            b"HTTP/1.1 101 Switching Protocols\r\n\r\nRAW:GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        got = b""
        while len(got) < len(expected):
            got += sock.recv(1000)
        assert got == expected
        sock.sendall(b"ping")
        assert recv_until_closed(sock) == b"ECHO:ping"  # then closed: nothing else written
        assert hooks.wait(5)
        sock.close()
    assert box["leftover"] == b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"


def test_takeover_without_upgrade_gets_the_pipelined_request():
    box = {}

    def app(environ, start_response):
        sock, leftover = environ["nettools.takeover"]()
        box["leftover"] = leftover
        sock.sendall(b"TAKEN")
        return iter([b"discarded"])

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nGET"
            b"GET /second HTTP/1.1\r\nHost: x\r\n\r\nPOST /third HTTP/1.1\r\nHost"
        )
        assert recv_until_closed(sock) == b"TAKEN"
        sock.close()
    assert box["leftover"] == (
        b"GET" b"GET /second HTTP/1.1\r\nHost: x\r\n\r\nPOST /third HTTP/1.1\r\nHost"
    )


def test_takeover_with_nothing_more_received():
    box = {}

    def app(environ, start_response):
        sock, box["leftover"] = environ["nettools.takeover"]()
        environ["nettools.set_idle"](True)
        data = sock.recv(10)
        environ["nettools.set_idle"](False)
        sock.sendall(data.upper())
        return []

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: "leftover" in box)
        sock.sendall(b"abc")
        assert recv_until_closed(sock) == b"ABC"
        sock.close()
    assert box["leftover"] == b""


def test_upgrade_request_not_taken_over_is_answered_and_closed():
    with ServerThread(hello) as srv:
        sock = connect(srv.port)
        sock.sendall(
            b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI * xx"
        )
        data = recv_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"hello /u")
        sock.close()


# ------------------------------------------------------------------ recipe


def test_recipe_wsgi_hello_serves_and_stops_on_sigterm():
    with Recipe("wsgi_hello.py", "--host", "127.0.0.1", "--port", "0") as recipe:
        host, port = recipe.tcp_address()
        assert recipe.ready_event["service"] == "wsgi"
        assert host == "127.0.0.1"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200
            assert resp.read() == b"Hello, World!\n"
        code, _, err = recipe.stop()
        assert code == 0, err


# ------------------------------------------------- declared Content-Length


@pytest.mark.parametrize("pieces", [[b"0123456789"], [b"01234", b"56789"]])
def test_body_longer_than_declared_is_cut_and_the_connection_closed(pieces):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "4")])
        return iter(pieces) if len(pieces) > 1 else pieces

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(sock)
        assert data.endswith(b"\r\n\r\n0123") and b"Connection: close\r\n" in data
        sock.close()


def test_body_shorter_than_declared_closes_the_connection():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        yield b"short"

    with ServerThread(app) as srv:
        sock = connect(srv.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until_closed(sock).endswith(b"\r\n\r\nshort")  # then EOF, not a hang
        sock.close()


def test_parse_errors_are_in_the_access_log():
    log = io.StringIO()
    with ServerThread(hello, log=log, log_output=True) as srv:
        get(srv.port, b"NOT HTTP\r\n\r\n")
        assert wait_for(lambda: log.getvalue().endswith("\n"))
    assert '"- - -" 400 0' in log.getvalue()
