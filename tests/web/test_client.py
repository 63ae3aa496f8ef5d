"""The green HTTP client against real local servers (no monkey_patch anywhere).

The servers are nettools WSGI servers on the test's own hub, so the client's
greenthreads and the server's share one loop; what the server observes
(connections, requests in flight at once, headers) is the evidence.
"""

from __future__ import annotations

import gzip
import zlib

import pytest
from helpers.green import settle
from helpers.isolated import run_isolated
from helpers.netns import run_in_private_network

import nettools
from nettools.green import socket as gsocket
from nettools.green import ssl as gssl
from nettools.web import wsgi
from nettools.web.client import (
    DEFAULT_USER_AGENT,
    FetchError,
    HttpClient,
    Response,
    is_public_address,
)

pytestmark = pytest.mark.timeout(30)

LOCAL = "127.0.0.1"


class Site:
    """A WSGI app with the routes the tests need, counting what it sees."""

    def __init__(self) -> None:
        self.connections: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, str, dict]] = []
        self.active = 0
        self.peak = 0
        self.barrier_size = 0
        self.arrived = 0
        self.all_arrived = nettools.Event()

    def __call__(self, env, start_response):
        self.connections.add((env["REMOTE_ADDR"], env["REMOTE_PORT"]))
        path = env["PATH_INFO"]
        headers = {k[5:]: v for k, v in env.items() if k.startswith("HTTP_")}
        self.requests.append((env["REQUEST_METHOD"], path, headers))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return self.route(env, path, start_response)
        finally:
            self.active -= 1

    def route(self, env, path, start_response):
        if path == "/barrier":
            # Answer only once barrier_size requests are in flight together
            # (or after 10 s, so a failing client cannot hang the test).
            self.arrived += 1
            if self.arrived >= self.barrier_size:
                self.all_arrived.send(True)
            with nettools.Timeout(10, False):
                self.all_arrived.wait()
            return self.text(start_response, f"{self.arrived}")
        if path == "/hold":
            nettools.sleep(0.05)  # keep the connection busy so others pile up
            return self.text(start_response, "held")
        if path.startswith("/hop/"):
            n = int(path.rsplit("/", 1)[1])
            target = f"/hop/{n - 1}" if n > 0 else "/final"
            start_response("302 Found", [("Location", target), ("Content-Length", "5")])
            return [b"moved"]
        if path == "/loop-a":
            start_response("301 Moved Permanently", [("Location", "/loop-b")])
            return [b""]
        if path == "/loop-b":
            start_response("307 Temporary Redirect", [("Location", "/loop-a")])
            return [b""]
        if path == "/to-ftp":
            start_response("302 Found", [("Location", "ftp://example.org/file")])
            return [b""]
        if path == "/to-garbage":
            start_response("302 Found", [("Location", "http://[::1")])
            return [b""]
        if path == "/to-other-address":
            port = env["SERVER_PORT"]
            start_response("302 Found", [("Location", f"http://127.0.0.2:{port}/final")])
            return [b""]
        if path == "/see-other":
            start_response("303 See Other", [("Location", "/final")])
            return [b""]
        if path == "/gzip":
            body = gzip.compress(b"hello gzip " * 1000)
            start_response("200 OK", [("Content-Encoding", "gzip"), ("Content-Type", "text/plain")])
            return [body]
        if path == "/deflate":
            body = zlib.compress(b"hello deflate " * 1000)
            start_response("200 OK", [("Content-Encoding", "deflate")])
            return [body]
        if path == "/bomb":
            # 64 MiB of zeros in about 64 KiB of gzip.
            body = gzip.compress(bytes(64 * 2**20), 9)
            start_response("200 OK", [("Content-Encoding", "gzip")])
            return [body]
        if path == "/endless":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return self.endless()
        if path == "/trickle":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return self.trickle()
        if path == "/latin1":
            start_response("200 OK", [("Content-Type", 'text/html; charset="ISO-8859-1"')])
            return ["caf\u00e9".encode("latin-1")]
        if path == "/missing":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"nope"]
        if path == "/echo":
            body = env["wsgi.input"].read()
            return self.text(start_response, f"{env['REQUEST_METHOD']} {body.decode()}")
        return self.text(start_response, f"page {path}")

    def endless(self):
        # 1 GiB in 64 KiB chunks: a client that does not stop reading times out the test.
        chunk = b"x" * 65536
        for _ in range(2**14):
            yield chunk

    def trickle(self):
        # A byte every 50 ms for 10 s: never a read timeout, always slow.
        for _ in range(200):
            nettools.sleep(0.05)
            yield b"."

    @staticmethod
    def text(start_response, text: str):
        body = text.encode()
        start_response(
            "200 OK",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]


@pytest.fixture
def site():
    app = Site()
    srv = wsgi.WSGIServer((LOCAL, 0), app, log_output=False, max_size=500).start()
    app.url = f"http://{LOCAL}:{srv.address[1]}"
    yield app
    srv.stop(0)


@pytest.fixture
def client():
    with HttpClient(proxy_from_env=False, connect_timeout=5, read_timeout=5) as c:
        yield c


# ------------------------------------------------------------------ basics


def test_get_returns_status_headers_body_and_default_user_agent(site, client):
    resp = client.get(site.url + "/hello")
    assert isinstance(resp, Response)
    assert (resp.status, resp.body, resp.truncated) == (200, b"page /hello", False)
    assert resp.url == resp.final_url == site.url + "/hello"
    assert resp.redirects == []
    assert resp.content_type == "text/plain"
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"  # case-insensitive
    assert resp.elapsed >= 0
    sent = site.requests[-1][2]
    assert sent["USER_AGENT"] == DEFAULT_USER_AGENT
    assert DEFAULT_USER_AGENT.startswith(f"nettools/{nettools.__version__} (+https://")
    assert "gzip" in sent["ACCEPT_ENCODING"]


def test_error_statuses_are_responses_not_exceptions(site, client):
    resp = client.get(site.url + "/missing")
    assert (resp.status, resp.body) == (404, b"nope")


def test_text_uses_the_charset_of_the_headers(site, client):
    resp = client.get(site.url + "/latin1")
    assert resp.text() == "caf\u00e9"
    assert resp.content_type == "text/html"


def test_custom_headers_body_and_head(site, client):
    resp = client.request("POST", site.url + "/echo", body=b"payload", headers={"X-Test": "1"})
    assert resp.body == b"POST payload"
    assert site.requests[-1][2]["X_TEST"] == "1"
    head = client.head(site.url + "/hello")
    assert (head.status, head.body) == (200, b"")
    assert site.requests[-1][0] == "HEAD"
    own = client.get(site.url + "/x", headers={"user-agent": "mine/1"})
    assert own.status == 200 and site.requests[-1][2]["USER_AGENT"] == "mine/1"


def test_keep_alive_reuses_one_connection(site, client):
    for i in range(10):
        assert client.get(f"{site.url}/{i}").status == 200
    assert len(site.requests) == 10
    assert len(site.connections) == 1


# ------------------------------------------------------------------ redirects


def test_redirects_are_followed_and_recorded_in_order(site, client):
    resp = client.get(site.url + "/hop/3")
    assert resp.final_url == site.url + "/final"
    assert resp.url == site.url + "/hop/3"
    assert resp.body == b"page /final"
    assert resp.redirects == [
        (302, site.url + "/hop/2"),
        (302, site.url + "/hop/1"),
        (302, site.url + "/hop/0"),
        (302, site.url + "/final"),
    ]


def test_redirect_cap_and_loop_raise(site):
    with HttpClient(proxy_from_env=False, max_redirects=3) as c:
        with pytest.raises(FetchError) as info:
            c.get(site.url + "/hop/5")
        assert info.value.kind == "too-many-redirects"
        assert len([r for r in site.requests if r[1].startswith("/hop/")]) == 4
        with pytest.raises(FetchError) as info:
            c.get(site.url + "/loop-a")
        assert info.value.kind == "too-many-redirects"
        assert str(info.value).startswith(f"too-many-redirects: {site.url}/loop-a: ")
        # Exactly at the cap is fine.
        assert c.get(site.url + "/hop/2").status == 200


def test_redirects_not_followed_on_request(site, client):
    resp = client.get(site.url + "/hop/1", follow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/hop/0"
    assert resp.final_url == site.url + "/hop/1" and resp.redirects == []


def test_redirect_check_sees_each_hop_and_can_stop_it(site, client):
    seen = []
    client.get(site.url + "/hop/1", redirect_check=seen.append)
    assert seen == [site.url + "/hop/0", site.url + "/final"]

    def refuse(url):
        raise FetchError(url, "refused-address", "not allowed")

    with pytest.raises(FetchError) as info:
        client.get(site.url + "/hop/1", redirect_check=refuse)
    assert info.value.kind == "refused-address"
    assert info.value.url == site.url + "/hop/1"
    assert not any(r[1] == "/hop/0" for r in site.requests[-1:])


@pytest.mark.parametrize("path", ["/to-ftp", "/to-garbage"])
def test_bad_redirect_targets_are_protocol_errors(site, client, path):
    with pytest.raises(FetchError) as info:
        client.get(site.url + path)
    assert info.value.kind == "protocol"
    assert "bad redirect" in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "http://host:99999/", "http://exa mple/", "http:///path", "mailto:x@y",
     "http://x\x1by/"],
)  # fmt: skip
def test_bad_urls_are_one_line_errors(client, url):
    with pytest.raises(FetchError) as info:
        client.get(url)
    assert info.value.kind == "other"
    assert str(info.value).isprintable()


def test_303_turns_a_post_into_a_get(site, client):
    resp = client.request("POST", site.url + "/see-other", body=b"data")
    assert resp.status == 200
    assert [r[0] for r in site.requests[-2:]] == ["POST", "GET"]


# ------------------------------------------------------------------ bodies


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/gzip", b"hello gzip " * 1000), ("/deflate", b"hello deflate " * 1000)],
)
def test_compressed_bodies_are_decoded(site, client, path, expected):
    resp = client.get(site.url + path)
    assert resp.body == expected and not resp.truncated


def test_body_cap_cuts_a_compression_bomb(site, client):
    resp = client.get(site.url + "/bomb", max_body=2**20)
    assert resp.truncated
    assert len(resp.body) == 2**20


def test_body_cap_stops_reading_an_endless_body(site):
    # The server would send 1 GiB; reading it all would run past the timeout.
    with HttpClient(proxy_from_env=False, max_body=256 * 1024) as c:
        resp = c.get(site.url + "/endless")
        assert resp.truncated and len(resp.body) == 256 * 1024
        # The cut connection is not reused: the next request gets a fresh one.
        assert c.get(site.url + "/after").body == b"page /after"
    assert len(site.connections) == 2


def test_body_under_the_cap_is_not_truncated(site, client):
    resp = client.get(site.url + "/hello", max_body=len(b"page /hello"))
    assert resp.body == b"page /hello" and not resp.truncated


# ------------------------------------------------------------------ failures


def test_read_timeout_on_a_server_that_never_answers():
    silent = nettools.listen((LOCAL, 0))  # the kernel accepts; nobody ever reads
    port = silent.getsockname()[1]
    try:
        with HttpClient(proxy_from_env=False, read_timeout=0.3) as c:
            with pytest.raises(FetchError) as info:
                c.get(f"http://{LOCAL}:{port}/")
        assert info.value.kind == "timeout"
        assert "read timed out after 0.3s" in str(info.value)
    finally:
        silent.close()


def test_whole_request_timeout_releases_the_connection(site):
    with HttpClient(proxy_from_env=False, per_host=1, read_timeout=5) as c:
        with pytest.raises(FetchError) as info:
            c.get(site.url + "/trickle", timeout=0.3)
        assert info.value.kind == "timeout"
        assert "no complete response within 0.3s" in str(info.value)
        # With one connection per host, a leaked connection would block this forever.
        assert c.get(site.url + "/next", timeout=5).body == b"page /next"


def test_a_dripping_server_is_cut_by_the_clients_own_deadline(site):
    # A byte every 50 ms never trips the 5 s read timeout; the client's
    # whole-request deadline (120 s unless told) cuts it all the same.
    assert HttpClient(proxy_from_env=False).timeout == 120.0
    with HttpClient(proxy_from_env=False, per_host=1, read_timeout=5, timeout=0.3) as c:
        with pytest.raises(FetchError) as info:
            c.get(site.url + "/trickle")
        assert info.value.kind == "timeout"
        assert "no complete response within 0.3s" in str(info.value)
        assert c.get(site.url + "/next").body == b"page /next"


def test_the_deadline_counts_the_exchange_not_the_wait_for_a_busy_host(site):
    # One connection to the host, thirty requests of 50 ms each: the last waits
    # about 1.5 s for its turn, longer than the 1 s deadline, and is not cut.
    with HttpClient(proxy_from_env=False, per_host=1, timeout=1.0) as c:
        pool = nettools.GreenPool(30)
        bodies = list(pool.imap(lambda _: c.get(site.url + "/hold").body, range(30)))
    assert bodies == [b"held"] * 30
    assert site.peak == 1


def test_connect_timeout_when_the_backlog_is_full():
    # A listener with a full accept queue drops further SYNs: connect hangs.
    lst = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_STREAM)
    lst.bind((LOCAL, 0))
    lst.listen(0)
    addr = lst.getsockname()
    fillers = []
    try:
        for _ in range(4):
            s = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(addr)
            fillers.append(s)
        with HttpClient(proxy_from_env=False, connect_timeout=0.3) as c:
            with pytest.raises(FetchError) as info:
                c.get(f"http://{addr[0]}:{addr[1]}/")
        assert info.value.kind == "timeout"
        assert "connect timed out" in str(info.value)
    finally:
        for s in fillers:
            s.close()
        lst.close()


def test_transport_failures_have_kinds(client):
    probe = gsocket.socket()
    probe.bind((LOCAL, 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(FetchError) as info:
        client.get(f"http://{LOCAL}:{port}/")
    assert info.value.kind == "connect"
    with pytest.raises(FetchError) as info:
        client.get("http://no-such-host.invalid/")
    assert info.value.kind == "dns"
    with pytest.raises(FetchError) as info:
        client.get("ftp://example.org/")
    assert info.value.kind == "other"
    assert "\n" not in str(info.value)


def test_allow_address_refuses_before_connecting(site):
    with HttpClient(proxy_from_env=False, allow_address=is_public_address) as c:
        with pytest.raises(FetchError) as info:
            c.get(site.url + "/secret")
    assert info.value.kind == "refused-address"
    assert site.requests == []


def test_allow_address_vets_the_address_of_every_hop(site):
    seen = []

    def allow(ip):
        seen.append(ip)
        return ip == LOCAL

    with HttpClient(proxy_from_env=False, allow_address=allow) as c:
        assert c.get(site.url + "/hello").status == 200
        with pytest.raises(FetchError) as info:
            c.get(site.url + "/to-other-address")
    assert info.value.kind == "refused-address"
    assert "127.0.0.2" in str(info.value)
    assert seen == [LOCAL, "127.0.0.2"]  # the reused connection needed no new check


def test_is_public_address():
    for ip in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.169.254",
               "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
               "224.0.0.1", "not an ip"):  # fmt: skip
        assert not is_public_address(ip), ip
    for ip in ("93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"):
        assert is_public_address(ip), ip


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
def tls_site(ca):
    app = Site()
    ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", LOCAL).configure_cert(ctx)
    srv = wsgi.WSGIServer((LOCAL, 0), app, log_output=False, ssl_context=ctx).start()
    app.port = srv.address[1]
    app.url = f"https://localhost:{app.port}"
    yield app
    srv.stop(0)


def test_tls_verified_with_a_custom_ca(tls_site, ca, tmp_path):
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    with HttpClient(proxy_from_env=False, ca_file=str(pem)) as c:
        resp = c.get(tls_site.url + "/secure")
        assert resp.body == b"page /secure"
        assert c.get(tls_site.url + "/again").status == 200
    assert len(tls_site.connections) == 1


def test_tls_fails_on_a_certificate_nobody_trusts(tls_site):
    with HttpClient(proxy_from_env=False) as c:  # certifi's bundle does not know the test CA
        with pytest.raises(FetchError) as info:
            c.get(tls_site.url + "/secure")
    assert info.value.kind == "tls"
    assert "certificate" in str(info.value).lower()
    assert tls_site.requests == []


def test_tls_verify_off(tls_site):
    with HttpClient(proxy_from_env=False, verify=False) as c:
        assert c.get(tls_site.url + "/x").status == 200


# ------------------------------------------------------------------ proxies


class TinyProxy:
    """A forward proxy: plain requests get a canned answer naming the target;
    CONNECT is tunnelled to the loopback port asked for."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.server = nettools.Server(nettools.listen((LOCAL, 0)), self.handle, name="proxy")
        self.server.start()
        self.url = f"http://{LOCAL}:{self.server.address[1]}"

    def handle(self, sock, addr):
        f = sock.makefile("rb")
        line = f.readline().decode().strip()
        while f.readline() not in (b"\r\n", b""):
            pass
        self.lines.append(line)
        method, target, _ = line.split()
        if method != "CONNECT":
            body = f"via proxy: {target}".encode()
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            return
        upstream = nettools.connect((LOCAL, int(target.rsplit(":", 1)[1])))
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pump = nettools.spawn(self.pump, upstream, sock)
        self.pump(sock, upstream)
        pump.wait()
        upstream.close()

    @staticmethod
    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(gsocket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.server.stop(0)


@pytest.fixture
def proxy():
    p = TinyProxy()
    yield p
    p.close()


@pytest.mark.parametrize("scheme", ["http://", ""])
def test_http_proxy_from_the_environment(proxy, monkeypatch, scheme):
    monkeypatch.setenv("http_proxy", proxy.url.replace("http://", scheme))
    monkeypatch.setenv("no_proxy", "skip.invalid")
    with HttpClient() as c:
        resp = c.get("http://target.invalid/page")
        assert c.get("http://target.invalid/again").status == 200
    assert resp.body == b"via proxy: http://target.invalid/page"
    assert proxy.lines == [
        "GET http://target.invalid/page HTTP/1.1",
        "GET http://target.invalid/again HTTP/1.1",
    ]


def test_no_proxy_goes_direct(proxy, site, monkeypatch):
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", LOCAL)
    with HttpClient() as c:
        assert c.get(site.url + "/direct").body == b"page /direct"
    assert proxy.lines == []
    with HttpClient(proxy_from_env=False) as c:
        monkeypatch.setenv("no_proxy", "")
        assert c.get(site.url + "/direct").body == b"page /direct"
    assert proxy.lines == []


def test_https_through_the_proxy_tunnels_with_connect(proxy, tls_site, ca, tmp_path, monkeypatch):
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("https_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", "")
    with HttpClient(ca_file=str(pem)) as c:
        resp = c.get(tls_site.url + "/tunnelled")
    assert resp.body == b"page /tunnelled"
    assert [line.rsplit(" ", 1)[0] for line in proxy.lines] == [
        f"CONNECT localhost:{tls_site.port}"
    ]


# ------------------------------------------------------------------ concurrency


def test_one_hundred_greenthreads_fetch_at_once(site):
    # The server answers no /barrier request until 100 are in flight together:
    # only a client that really runs them concurrently gets "100" back.
    site.barrier_size = 100
    with HttpClient(proxy_from_env=False, per_host=100) as c:
        pool = nettools.GreenPool(100)
        bodies = list(pool.imap(lambda _: c.get(site.url + "/barrier").body, range(100)))
    assert site.peak == 100
    assert all(int(b) >= 100 for b in bodies)


def test_per_host_limit_bounds_connections_in_flight(site):
    with HttpClient(proxy_from_env=False, per_host=4) as c:
        pool = nettools.GreenPool(50)
        statuses = list(pool.imap(lambda _: c.get(site.url + "/hold").status, range(40)))
    assert statuses == [200] * 40
    assert site.peak == 4
    assert len(site.connections) == 4


# ------------------------------------------------------------------ processes


def test_works_in_a_monkey_patched_process_and_beside_the_real_urllib3():
    # The client runs on the hub whether or not the program patched the stdlib,
    # and the program's own urllib3 (on the patched socket) works beside it.
    out = run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        import socket
        import urllib3
        from nettools.web import wsgi
        from nettools.web import wsgi
        from nettools.web.client import HttpClient

        def app(env, start_response):
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]

        srv = wsgi.WSGIServer(("127.0.0.1", 0), app, log_output=False).start()
        url = "http://127.0.0.1:%d/" % srv.address[1]
        with HttpClient(proxy_from_env=False) as c:
            pool = nettools.GreenPool(10)
            assert list(pool.imap(lambda _: c.get(url).body, range(10))) == [b"ok"] * 10
        # The program's own urllib3 is untouched by the client and still works.
        assert urllib3.util.connection.socket is socket
        pm = urllib3.PoolManager()
        assert pm.request("GET", url).data == b"ok"
        print("OK")
        """
    )
    assert out.strip().endswith("OK")


# ------------------------------------------------------------------ the hub and libcurl


def test_a_timeout_in_a_waiting_greenthread_takes_its_transfer_out(site):
    from nettools.web.client.curlloop import curl_loop

    with HttpClient(proxy_from_env=False, per_host=1, read_timeout=5) as c:
        with nettools.Timeout(0.2, False):
            c.get(site.url + "/trickle")
            raise AssertionError("the Timeout did not reach the waiting greenthread")
        loop = curl_loop()
        assert loop.running == {}
        assert not loop._watching  # nothing left for the hub to wake for libcurl
        # The gate was released and the cut connection is not reused.
        assert c.get(site.url + "/next").body == b"page /next"
    assert len(site.connections) == 2


def test_killing_a_waiting_greenthread_takes_its_transfer_out(site):
    from nettools.web.client.curlloop import curl_loop

    site.barrier_size = 2  # never reached: the request waits until killed
    with HttpClient(proxy_from_env=False, per_host=1) as c:
        gt = nettools.spawn(c.get, site.url + "/barrier")
        settle()  # the server holds the request
        assert site.arrived == 1
        gt.kill()
        assert gt.dead and curl_loop().running == {}
        assert c.get(site.url + "/after").body == b"page /after"


def test_two_clients_share_the_thread_and_keep_their_own_settings(site):
    with (
        HttpClient(proxy_from_env=False, user_agent="one/1") as a,
        HttpClient(proxy_from_env=False, user_agent="two/2", max_body=4) as b,
    ):
        pool = nettools.GreenPool(20)

        def fetch(i):
            client = (a, b)[i % 2]
            resp = client.get(f"{site.url}/r{i}")
            return i, resp.body, resp.truncated

        results = list(pool.imap(fetch, range(40)))
    for i, body, truncated in results:
        if i % 2:
            assert (body, truncated) == (f"page /r{i}".encode()[:4], True)
        else:
            assert (body, truncated) == (f"page /r{i}".encode(), False)
    agents = {path: h["USER_AGENT"] for _, path, h in site.requests}
    assert all(agents[f"/r{i}"] == ("one/1", "two/2")[i % 2] for i in range(40))


def test_other_greenthreads_run_while_a_name_is_resolved():
    # libcurl resolves in a thread of its own (an asynchronous resolver build),
    # so the hub keeps turning while a lookup is in flight.  Proved with the
    # system resolver asking a DNS server that is a greenthread of the same
    # hub, and that answers only once other greenthreads have run meanwhile:
    # were the lookup made on the hub's thread, nothing could answer it.  It
    # all runs in a private network namespace whose resolv.conf names that
    # server, so no query can leave the machine.
    import pycurl

    assert pycurl.version_info()[4] & pycurl.VERSION_ASYNCHDNS
    proc = run_in_private_network(
        """
        import dnslib
        import nettools
        from nettools.green import socket
        from nettools.web import wsgi
        from nettools.web.client import HttpClient

        asked = nettools.Event()
        release = nettools.Event()
        ticks = []

        def dns_server(sock):
            while True:
                data, peer = sock.recvfrom(4096)
                query = dnslib.DNSRecord.parse(data)
                question = query.q
                if not asked.ready():
                    asked.send(str(question.qname))
                release.wait()  # the lookup stays in flight until then
                reply = query.reply()
                if question.qtype == dnslib.QTYPE.A:
                    reply.add_answer(dnslib.RR(question.qname, dnslib.QTYPE.A,
                                               rdata=dnslib.A("127.0.0.1"), ttl=60))
                sock.sendto(reply.pack(), peer)

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"resolved " + environ["HTTP_HOST"].encode()]

        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 53))
        nettools.spawn(dns_server, udp)
        web = nettools.listen(("127.0.0.1", 0))
        port = web.getsockname()[1]
        nettools.spawn(wsgi.server, web, app, log_output=False)

        def ticker():
            while not release.ready():
                ticks.append(1)
                nettools.sleep(0.001)

        with HttpClient(proxy_from_env=False) as client:
            fetch = nettools.spawn(client.get, f"http://slow.test:{port}/")
            with nettools.Timeout(20):
                print("asked for", asked.wait())
                nettools.spawn(ticker)
                while len(ticks) < 20:  # greenthreads run; the lookup waits
                    nettools.sleep(0.001)
                assert not fetch.dead
                release.send(True)
                resp = fetch.wait()
        print(resp.status, resp.body.decode())
        print("OK")
        """,
        resolv_conf="nameserver 127.0.0.1\noptions timeout:5 attempts:1\n",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "asked for slow.test.", proc.stdout
    assert lines[-2].startswith("200 resolved slow.test:") and lines[-1] == "OK", proc.stdout


class ClosingServer:
    """Answers each request with ``Connection: close`` and closes, noting which
    fds libcurl was watching while the request was in flight (and its own)."""

    def __init__(self) -> None:
        from nettools.web.client.curlloop import curl_loop

        self.loop = curl_loop()
        self.curl_fds: set[int] = set()
        self.green_fds: set[int] = set()  # its own sockets, green ones
        self.server = nettools.Server(nettools.listen((LOCAL, 0)), self.handle, name="closer")
        self.server.start()
        self.port = self.server.address[1]

    def handle(self, sock, addr):
        f = sock.makefile("rb")
        while f.readline() not in (b"\r\n", b""):
            pass
        self.curl_fds.update(self.loop._masks)
        self.green_fds.add(sock.fileno())
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        f.close()
        sock.close()


def test_sockets_libcurl_closed_do_not_confuse_later_fds(site):
    closer = ClosingServer()
    green_fds: set[int] = set()
    try:
        with HttpClient(proxy_from_env=False) as c:
            for i in range(20):
                assert c.get(f"http://{LOCAL}:{closer.port}/{i}").body == b"ok"
                # The numbers libcurl just closed go to green sockets, whose
                # waits must work (the hub knows nothing stale about them) ...
                socks = [nettools.connect((LOCAL, closer.port)) for _ in range(3)]
                for s in socks:
                    green_fds.add(s.fileno())
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert s.recv(100).endswith(b"ok")
                    s.close()
                # ... and libcurl gets it back again for the next request.
                assert c.get(site.url + f"/after{i}").body == f"page /after{i}".encode()
    finally:
        closer.server.stop(0)
    assert closer.curl_fds & (green_fds | closer.green_fds)  # numbers really were shared


def test_closing_the_last_client_closes_idle_connections():
    ended = nettools.Event()

    def handle(sock, addr):
        f = sock.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    break
                if line == b"\r\n":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            ended.send(True)

    server = nettools.Server(nettools.listen((LOCAL, 0)), handle, name="keeper")
    server.start()
    try:
        with HttpClient(proxy_from_env=False) as c:
            assert c.get(f"http://{LOCAL}:{server.address[1]}/").body == b"ok"
            assert not ended.ready()  # kept alive for reuse
        assert ended.wait(timeout=5)
    finally:
        server.stop(0)


def test_an_idle_client_does_not_hide_a_deadlock():
    # A thread whose transfers are all done has nothing left for the hub to
    # wait on: a wait that can never end is still reported.
    out = run_isolated(
        """
        import nettools
        from nettools.web import wsgi
        from nettools.web import wsgi
        from nettools.web.client import HttpClient

        def app(env, start_response):
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]

        srv = wsgi.WSGIServer(("127.0.0.1", 0), app, log_output=False).start()
        client = HttpClient(proxy_from_env=False)
        assert client.get("http://127.0.0.1:%d/" % srv.address[1]).body == b"ok"
        srv.stop(0)
        try:
            nettools.Event().wait()
        except nettools.DeadlockError:
            print("OK")
        """
    )
    assert out.strip().endswith("OK")


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (b"hello there\r\n", "not HTTP"),
        (b"", "empty"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", ""),
    ],
)
def test_broken_answers_are_protocol_errors(answer, words):
    def handle(sock, addr):
        f = sock.makefile("rb")
        while f.readline() not in (b"\r\n", b""):
            pass
        sock.sendall(answer)
        f.close()
        sock.close()

    server = nettools.Server(nettools.listen((LOCAL, 0)), handle, name="broken")
    server.start()
    try:
        with HttpClient(proxy_from_env=False) as c:
            with pytest.raises(FetchError) as info:
                c.get(f"http://{LOCAL}:{server.address[1]}/")
    finally:
        server.stop(0)
    assert info.value.kind == "protocol"
    assert words.lower() in str(info.value).lower()
