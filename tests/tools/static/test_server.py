"""``StaticServer`` served from a thread of its own, talked to by real blocking clients:
raw sockets (for targets no client library would send), ``http.client`` and requests."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl

import pytest
import requests
from helpers.serverthread import ServerThread
from helpers.tls import Certs
from helpers.wsgi import read_response

from nettools.tools.static import StaticServer

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"
SECRET = b"the secret outside the root"


@pytest.fixture
def site(tmp_path):
    """A served directory, with a secret beside it that must never come out."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_bytes(SECRET)
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "a.txt").write_bytes(b"0123456789")
    (root / "style.css").write_text("body{}")
    (root / "docs").mkdir()
    (root / "docs" / "page.html").write_text("<p>page</p>")
    (root / "empty").mkdir()
    return root


def serve(root, **options) -> ServerThread:
    return ServerThread(lambda sock: StaticServer(sock, str(root), **options))


def raw(srv: ServerThread, request: bytes, head: bool = False):
    """Send ``request`` as is on a new connection; the response."""
    with socket.create_connection((LOCAL, srv.port), timeout=10) as sock:
        sock.sendall(request)
        return read_response(sock.makefile("rb"), head=head)


def get(srv: ServerThread, target: str | bytes, *headers: str, method: str = "GET"):
    if isinstance(target, str):
        target = target.encode()
    lines = b"".join(h.encode() + b"\r\n" for h in headers)
    request = b"%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method.encode(), target, lines)
    return raw(srv, request, head=method == "HEAD")


# ------------------------------------------------------------------ files


def test_a_file_with_its_validators_and_media_type(site):
    with serve(site) as srv:
        resp = get(srv, "/a.txt")
        assert resp.status == 200 and resp.body == b"0123456789"
        assert resp.header("Content-Type") == "text/plain"
        assert resp.header("Content-Length") == "10"
        assert resp.header("Accept-Ranges") == "bytes"
        assert resp.header("ETag").startswith('"') and resp.header("Last-Modified")
        assert get(srv, "/style.css").header("Content-Type") == "text/css"


def test_head_has_the_headers_of_get_and_no_body(site):
    with serve(site) as srv:
        with socket.create_connection((LOCAL, srv.port), timeout=10) as sock:
            f = sock.makefile("rb")
            sock.sendall(b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            head = read_response(f, head=True)
            assert head.status == 200 and head.header("Content-Length") == "10"
            # The next response follows at once: the HEAD had no body.
            assert read_response(f).body == b"0123456789"


def test_a_large_file_goes_out_whole_by_sendfile_and_a_range_of_it(site):
    data = os.urandom(3 * 1024 * 1024 + 17)
    (site / "big.bin").write_bytes(data)
    with serve(site) as srv:
        resp = requests.get(f"{srv.url}/big.bin", timeout=20)
        assert hashlib.sha256(resp.content).digest() == hashlib.sha256(data).digest()
        ranged = requests.get(f"{srv.url}/big.bin", headers={"Range": "bytes=1000000-2000000"},
                              timeout=20)  # fmt: skip
        assert ranged.status_code == 206
        assert ranged.headers["Content-Range"] == f"bytes 1000000-2000000/{len(data)}"
        assert ranged.content == data[1000000:2000001]
        tail = requests.get(f"{srv.url}/big.bin", headers={"Range": "bytes=-5"}, timeout=20)
        assert tail.content == data[-5:]


def test_ranges_and_their_errors(site):
    with serve(site) as srv:
        resp = get(srv, "/a.txt", "Range: bytes=2-4")
        assert (resp.status, resp.body) == (206, b"234")
        assert resp.header("Content-Range") == "bytes 2-4/10"
        beyond = get(srv, "/a.txt", "Range: bytes=10-")
        assert beyond.status == 416 and beyond.header("Content-Range") == "bytes */10"
        several = get(srv, "/a.txt", "Range: bytes=0-1,4-5")
        assert several.status == 200 and several.body == b"0123456789"


def test_conditional_requests_make_304s_with_http_client(site):
    with serve(site) as srv:
        conn = http.client.HTTPConnection(LOCAL, srv.port, timeout=10)
        conn.request("GET", "/a.txt")
        first = conn.getresponse()
        first.read()
        etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
        conn.request("GET", "/a.txt", headers={"If-None-Match": etag})
        again = conn.getresponse()
        assert again.status == 304 and again.read() == b"" and again.getheader("ETag") == etag
        conn.request("GET", "/a.txt", headers={"If-Modified-Since": modified})
        since = conn.getresponse()
        assert since.status == 304 and since.read() == b""
        conn.request("GET", "/a.txt", headers={"If-Match": '"nope"'})
        failed = conn.getresponse()
        failed.read()
        assert failed.status == 412
        conn.request("GET", "/a.txt")  # the same connection lived through all of it
        assert conn.getresponse().read() == b"0123456789"
        conn.close()


def test_a_changed_file_is_served_anew_with_a_new_etag(site):
    with serve(site, revalidate=0) as srv:
        first = get(srv, "/a.txt")
        (site / "a.txt").write_bytes(b"changed, and longer")
        second = get(srv, "/a.txt")
        assert second.body == b"changed, and longer"
        assert second.header("ETag") != first.header("ETag")
        assert get(srv, "/a.txt", f"If-None-Match: {first.header('ETag')}").status == 200


def test_pipelined_requests_are_answered_in_order(site):
    with serve(site) as srv, socket.create_connection((LOCAL, srv.port), timeout=10) as sock:
        sock.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        f = sock.makefile("rb")
        assert read_response(f).body == b"0123456789"
        assert read_response(f).body == b"body{}"
        last = read_response(f)
        assert last.status == 404 and last.header("Connection") == "close"
        assert f.read() == b""


def test_other_methods_get_405_and_the_connection_goes_on(site):
    with serve(site) as srv, socket.create_connection((LOCAL, srv.port), timeout=10) as sock:
        sock.sendall(b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                     b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        f = sock.makefile("rb")
        refused = read_response(f)
        assert refused.status == 405 and refused.header("Allow") == "GET, HEAD"
        assert read_response(f).body == b"0123456789"


def test_limits_hold(site):
    with serve(site) as srv:
        assert get(srv, "/a.txt", "X-Big: " + "x" * 70_000).status == 431
        assert get(srv, "/" + "a" * 9000).status == 414
        big_body = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        assert raw(srv, big_body).status == 413


# ------------------------------------------------------------------ directories


def test_a_directory_redirects_to_its_slash_then_serves_its_index(site):
    with serve(site) as srv:
        moved = get(srv, "/docs?x=1")
        assert moved.status == 301 and moved.header("Location") == "/docs/?x=1"
        assert get(srv, "/").body == b"<h1>home</h1>"
        listing = get(srv, "/docs/")
        assert listing.status == 200 and b'href="page.html"' in listing.body


def test_a_redirect_never_leads_to_another_host(site):
    (site / "evil.com").mkdir()
    with serve(site) as srv:
        for target in ("//evil.com", "///evil.com", "/./evil.com", "//evil.com/../evil.com"):
            moved = get(srv, target)
            assert moved.status == 301, target
            assert moved.header("Location") == "/evil.com/", target


def test_the_listing_escapes_every_name_and_its_links_lead_to_the_files(site):
    names = ["<img src=x onerror=alert(1)>.txt", 'a&b "q" \'s\'.txt', "#frag?x=1.txt",
             "javascript:alert(1)", "sp ace.txt"]  # fmt: skip
    d = site / "odd"
    d.mkdir()
    for name in names:
        (d / name).write_text(name)
    os.mkdir(os.path.join(os.fsencode(d), b"caf\xe9"))
    with serve(site) as srv:
        page = get(srv, "/odd/").body.decode()
        assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;.txt" in page
        assert "a&amp;b &quot;q&quot; &#x27;s&#x27;.txt" in page
        assert 'href="javascript:' not in page and 'href="javascript%3Aalert%281%29"' in page
        assert 'href="caf%E9/"' in page and "caf\ufffd/" in page
        for name in names:
            href = page.split(">" + _escaped(name) + "<")[0].rsplit('href="', 1)[1].split('"')[0]
            resp = get(srv, "/odd/" + href.replace("&amp;", "&"))
            assert resp.status == 200 and resp.body == name.encode(), name
        assert get(srv, "/odd/caf%E9/").status == 200


def _escaped(name: str) -> str:
    import html

    return html.escape(name)


def test_a_directory_without_index_or_listing_is_403(site):
    with serve(site, listing=False) as srv:
        assert get(srv, "/empty/").status == 403
        assert get(srv, "/").status == 200  # the index still serves


# ------------------------------------------------------------------ what stays inside


TRAVERSALS = [
    b"/../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/secret.txt", b"/docs/../../secret.txt",
    b"/docs/%2e%2e/%2e%2e/secret.txt", b"/%2e%2e%2fsecret.txt", b"/..%2fsecret.txt",
    b"/docs/..%2f..%2fsecret.txt", b"/%252e%252e/secret.txt", b"/..\\secret.txt",
    b"/%2e%2e%5csecret.txt", b"http://x/../secret.txt", b"/a.txt%00/../../secret.txt",
    b"/../secrets/key", b"/./../secrets/key",
]  # fmt: skip


@pytest.mark.parametrize("target", TRAVERSALS)
def test_no_form_of_dot_dot_climbs_out(site, target):
    with serve(site) as srv:
        resp = get(srv, target)
        assert resp.status in (400, 404), (target, resp)
        assert SECRET not in resp.body


def test_symbolic_links_out_of_the_root_are_refused_unless_allowed(site, tmp_path):
    links = site / "links"
    links.mkdir()
    (links / "out.txt").symlink_to(tmp_path / "secret.txt")
    (links / "outdir").symlink_to(tmp_path / "secrets")
    (links / "in.txt").symlink_to(site / "a.txt")
    (links / "docs-link").symlink_to(site / "docs")
    with serve(site) as srv:
        for target in ("/links/out.txt", "/links/outdir/key", "/links/outdir/", "/links/outdir"):
            resp = get(srv, target)
            assert resp.status == 404 and SECRET not in resp.body, target
        listing = get(srv, "/links/").body
        assert b"out.txt" not in listing and b"outdir" not in listing
        assert b"in.txt" in listing and b"docs-link/" in listing
        assert get(srv, "/links/in.txt").body == b"0123456789"
        assert get(srv, "/links/docs-link/page.html").body == b"<p>page</p>"
    with serve(site, follow_symlinks=True) as srv:
        assert get(srv, "/links/out.txt").body == SECRET


def test_a_file_swapped_for_a_link_out_of_the_root_is_refused_at_once(site, tmp_path):
    (site / "swap.txt").write_bytes(b"inside")
    (site / "big.bin").write_bytes(b"x" * 200_000)
    (tmp_path / "outside-big").write_bytes(SECRET * 10_000)
    with serve(site, revalidate=0) as srv:
        assert get(srv, "/swap.txt").body == b"inside"
        assert get(srv, "/big.bin").status == 200
        (site / "swap.txt").unlink()
        (site / "swap.txt").symlink_to(tmp_path / "secret.txt")
        (site / "big.bin").unlink()
        (site / "big.bin").symlink_to(tmp_path / "outside-big")
        for target in ("/swap.txt", "/big.bin"):
            resp = get(srv, target)
            assert resp.status == 404 and SECRET not in resp.body, target


def test_hidden_names_are_not_served_unless_asked(site):
    (site / ".git").mkdir()
    (site / ".git" / "config").write_text("[core]")
    (site / ".well-known").mkdir()
    (site / ".well-known" / "security.txt").write_text("Contact: x")
    with serve(site) as srv:
        assert get(srv, "/.git/config").status == 404
        assert get(srv, "/%2egit/config").status == 404
        assert b".git" not in get(srv, "/").body
        assert get(srv, "/.well-known/security.txt").status == 200
    with serve(site, hidden=True) as srv:
        assert get(srv, "/.git/config").body == b"[core]"


def test_a_fifo_is_not_served_and_does_not_block_the_server(site):
    os.mkfifo(site / "pipe")
    with serve(site) as srv:
        assert get(srv, "/pipe").status == 404
        assert get(srv, "/a.txt").status == 200


def test_bad_targets_are_400(site):
    with serve(site) as srv:
        assert raw(srv, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n").status == 400
        assert raw(srv, b"GET a.txt HTTP/1.1\r\nHost: x\r\n\r\n").status == 400


# ------------------------------------------------------------------ TLS


def test_over_tls_a_large_file_arrives_whole(site, tmp_path):
    certs = Certs()
    data = os.urandom(1024 * 1024 + 3)
    (site / "big.bin").write_bytes(data)
    with ServerThread(lambda sock: StaticServer(sock, str(site),
                                                ssl_context=certs.server_context())) as srv:
        ctx = certs.client_context()
        conn = http.client.HTTPSConnection(LOCAL, srv.port, context=ctx, timeout=20)
        conn.request("GET", "/big.bin")
        assert conn.getresponse().read() == data
        conn.request("GET", "/a.txt", headers={"Range": "bytes=3-"})
        assert conn.getresponse().read() == b"3456789"
        conn.close()
        assert isinstance(ctx, ssl.SSLContext)
