"""TLS on every nettools server is safe by construction (nettools.tlsguard): TLS 1.2 at
least, no renegotiation, handshakes bounded in time and in number."""

from __future__ import annotations

import shutil
import ssl
import warnings

import pytest
from helpers.green import settle
from helpers.sockets import recv_all
from helpers.tls import Certs

import nettools
from nettools import Server, Timeout, spawn
from nettools.green import socket as gsocket
from nettools.green import subprocess as gsubprocess
from nettools.net import server_context
from nettools.tlsguard import MINIMUM_VERSION

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


@pytest.fixture
def certs():
    return Certs("localhost", LOCAL)


def echo(conn, addr):
    try:
        while data := conn.recv(4096):
            conn.sendall(data)
    except OSError:
        pass  # the client broke the connection off


def serve_tls(servers, ctx, handle=echo, **kw) -> Server:
    server = Server(nettools.listen((LOCAL, 0)), handle, ssl_context=ctx, **kw).start()
    servers.append(server)
    return server


def legacy(ctx: ssl.SSLContext, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """``ctx`` allowing TLS 1.0 and 1.1 (and, with ``maximum``, nothing newer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        if maximum is not None:
            ctx.maximum_version = maximum
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # TLS 1.0/1.1 need SHA-1 signatures
    return ctx


def unverified_client() -> ssl.SSLContext:
    ctx = nettools.green.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_server_context_holds_the_policy(certs, tmp_path):
    files = certs.write(tmp_path)
    ctx = server_context(str(files.cert), str(files.key))
    assert ctx.minimum_version == MINIMUM_VERSION == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_RENEGOTIATION


def test_a_context_that_allows_old_tls_is_held_to_tls_1_2(servers, certs):
    server = serve_tls(servers, legacy(certs.server_context()))
    old = legacy(unverified_client(), maximum=ssl.TLSVersion.TLSv1_1)
    with gsocket.create_connection(server.address, timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            old.wrap_socket(raw).close()
    with gsocket.create_connection(server.address, timeout=10) as raw:
        with unverified_client().wrap_socket(raw) as tls:
            tls.sendall(b"ping")
            assert tls.recv(4) == b"ping"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_client_renegotiation_is_refused_even_if_the_context_allows_it(servers, certs):
    # OpenSSL 3 refuses a client's renegotiation unless the context allows it
    # (SSL_OP_ALLOW_CLIENT_RENEGOTIATION); a server must refuse it regardless.
    ctx = certs.server_context()
    ctx.options |= 0x100  # SSL_OP_ALLOW_CLIENT_RENEGOTIATION
    server = serve_tls(servers, ctx)
    # s_client renegotiates when it reads a line "R"; we read its stdout green.
    target = f"{LOCAL}:{server.address[1]}"
    client = gsubprocess.Popen(
        ["openssl", "s_client", "-tls1_2", "-no_ign_eof", "-connect", target],
        stdin=gsubprocess.PIPE, stdout=gsubprocess.PIPE, stderr=gsubprocess.PIPE,
    )  # fmt: skip

    def echoed(line: bytes) -> bool:
        """Send ``line``; True once it comes back, False if the connection ends first."""
        client.stdin.write(line + b"\n")
        client.stdin.flush()
        while out := client.stdout.readline():
            if out.rstrip(b"\n") == line:
                return True
        return False

    try:
        with Timeout(20):
            assert echoed(b"hello")  # the handshake is done and the echo works
            client.stdin.write(b"R\n")
            client.stdin.flush()
            survived = echoed(b"after the renegotiation")
            client.stdin.close()
            stderr = client.stderr.read()
            client.wait()
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert not survived, stderr
    assert b"no renegotiation" in stderr


def test_a_stalled_handshake_is_cut_at_the_timeout_counted_from_its_start(servers, certs):
    # A byte of ClientHello every 100 ms: each within any per-read timeout,
    # never a finished handshake.  It is closed 0.5 s after it began.
    server = serve_tls(servers, certs.server_context(), handshake_timeout=0.5)
    drip = gsocket.create_connection(server.address, timeout=5)
    closed = False
    try:
        for byte in b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc" * 5:  # a ClientHello's first bytes
            try:
                drip.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            with Timeout(0.1, False):
                if drip.recv(1) == b"":
                    closed = True
                    break
    finally:
        drip.close()
    assert closed, "the handshake outlived 4.5 s of dripping"


@pytest.mark.timeout(120)
def test_a_thousand_half_open_tls_connections_keep_no_real_client_out(servers, certs):
    # Half-open: connected, and then silent, or gone quiet half way through a
    # ClientHello.  The handshake timeout (60 s) outlives the test; the pool
    # (1000, the default) is as large as the crowd.  A real client is served
    # all the same: handshakes wait outside the pool, and past
    # max_handshakes a stalled one is cut to make room.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    server = serve_tls(servers, certs.server_context(), handshake_timeout=60)
    crowd = []
    try:
        for i in range(1000):
            sock = gsocket.create_connection(server.address, timeout=10)
            if i % 2:
                sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # and no more
            crowd.append(sock)
        raw = gsocket.create_connection(server.address, timeout=10)
        with certs.client_context(green=True).wrap_socket(raw, server_hostname=LOCAL) as tls:
            tls.sendall(b"served")
            assert tls.recv(6) == b"served"
        assert server.handshakes.cut > 0
        assert len(server.handshakes) <= server.handshakes.limit
    finally:
        for sock in crowd:
            sock.close()


def test_a_stop_ends_handshakes_in_progress(servers, certs):
    server = serve_tls(servers, certs.server_context(), handshake_timeout=60)
    silent = [gsocket.create_connection(server.address, timeout=10) for _ in range(3)]
    try:
        settle()  # accepted, and waiting for the ClientHello
        assert len(server.handshakes) == 3
        stopper = spawn(server.stop, 30)
        with Timeout(10):
            stopper.wait()
            for sock in silent:
                assert recv_all(sock) == b""
        assert len(server.handshakes) == 0
    finally:
        for sock in silent:
            sock.close()
