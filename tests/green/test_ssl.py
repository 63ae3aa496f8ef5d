"""nettools.green.ssl: real TLS on loopback with a CA and certificates made by trustme."""

from __future__ import annotations

import contextlib
import hashlib
import random
import ssl as stdssl
import subprocess
import sys
import textwrap
import time

import pytest
from helpers.green import settle, ticking
from helpers.sockets import recv_exactly

trustme = pytest.importorskip("trustme")

import nettools  # noqa: E402 - after the importorskip
from nettools import Event, IOClosed, Timeout, spawn, tpool  # noqa: E402
from nettools.green import socket as gsocket  # noqa: E402
from nettools.green import ssl as gssl  # noqa: E402

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca):
    return ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture
def server_ctx(server_cert):
    ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ctx(ca):
    ctx = gssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def pem_files(tmp_path, ca, server_cert):
    """Paths of the CA certificate, the server certificate and its key."""
    cafile, certfile, keyfile = (str(tmp_path / n) for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(cafile)
    server_cert.cert_chain_pems[0].write_to_path(certfile)
    server_cert.private_key_pem.write_to_path(keyfile)
    return cafile, certfile, keyfile


def tls_echo(conn, ctx) -> int:
    """Serve one TLS echo session; returns the byte count."""
    total = 0
    with ctx.wrap_socket(conn, server_side=True) as tls:
        while True:
            data = tls.recv(65536)
            if not data:
                return total
            total += len(data)
            tls.sendall(data)


@contextlib.contextmanager
def serving(listener, handler, *args):
    """Accept forever in a greenthread, running ``handler(conn, *args)`` for each.

    Yields the list of handler greenthreads; kills everything on exit.
    """
    handlers = []

    def accept_loop():
        while True:
            conn, _ = listener.accept()
            handlers.append(spawn(handler, conn, *args))

    acceptor = spawn(accept_loop)
    try:
        yield handlers
    finally:
        acceptor.kill()
        for gt in handlers:
            gt.kill()


def tls_client(addr, ctx, hostname: str = "localhost", timeout: float | None = None):
    sock = gsocket.create_connection(addr, timeout=timeout)
    try:
        return ctx.wrap_socket(sock, server_hostname=hostname)
    except BaseException:
        sock.close()
        raise


# ------------------------------------------------------------------ sessions


@pytest.mark.timeout(120)
def test_a_hundred_concurrent_tls_echo_sessions(listener, server_ctx, client_ctx):
    sessions = 100
    handshaken = [0]
    all_handshaken = Event()

    def client(seed):
        rng = random.Random(seed)
        sent = got = b""
        with tls_client(listener.getsockname(), client_ctx) as tls:
            assert isinstance(tls, gssl.SSLSocket)
            assert tls.version().startswith("TLS")
            handshaken[0] += 1
            if handshaken[0] == sessions:
                all_handshaken.send()
            all_handshaken.wait()  # every session is open at the same time
            for _ in range(10):
                chunk = rng.randbytes(rng.randint(1, 20000))
                tls.sendall(chunk)
                sent += chunk
                got += recv_exactly(tls, len(chunk))
        return hashlib.sha256(sent).digest(), hashlib.sha256(got).digest()

    with serving(listener, tls_echo, server_ctx) as handlers:
        results = [gt.wait() for gt in [spawn(client, i) for i in range(sessions)]]
        served = sum(gt.wait() for gt in handlers)
    assert len(results) == sessions
    assert all(a == b for a, b in results)
    assert served > 0


def test_sendall_of_four_mib_over_tls(listener, server_ctx, client_ctx):
    data = random.Random(4).randbytes(4 << 20)

    def digest_server(conn):
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            digest = hashlib.sha256(recv_exactly(tls, len(data))).hexdigest()
            tls.sendall(digest.encode())

    with serving(listener, digest_server):
        with tls_client(listener.getsockname(), client_ctx) as tls:
            tls.sendall(data)
            assert tls.recv(100).decode() == hashlib.sha256(data).hexdigest()


def test_sni_callback_sees_the_server_hostname(listener, server_ctx, client_ctx):
    seen = []

    def sni(sslobj, name, ctx):
        seen.append(name)

    server_ctx.sni_callback = sni
    with serving(listener, tls_echo, server_ctx):
        with tls_client(listener.getsockname(), client_ctx, hostname="localhost") as tls:
            assert tls.server_hostname == "localhost"
            tls.sendall(b"sni")
            assert tls.recv(10) == b"sni"
    assert seen == ["localhost"]


# ------------------------------------------------------------------ timeouts


def test_client_handshake_with_a_silent_peer_times_out(listener, client_ctx):
    # The listener never accepts: TCP connects via the backlog, TLS never answers.
    sock = gsocket.create_connection(listener.getsockname())
    sock.settimeout(0.5)
    with sock, ticking() as ticks:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            client_ctx.wrap_socket(sock, server_hostname="localhost")
        elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 10
    assert ticks[0] > 0


def test_server_handshake_with_a_silent_client_times_out(listener, server_ctx):
    client = gsocket.create_connection(listener.getsockname())  # says nothing
    conn, _ = listener.accept()
    conn.settimeout(0.5)
    with client, conn:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            server_ctx.wrap_socket(conn, server_side=True)
        assert 0.5 <= time.monotonic() - start < 10


def test_tls_recv_timeout_and_non_blocking_read(listener, server_ctx, client_ctx):
    with serving(listener, tls_echo, server_ctx):
        with tls_client(listener.getsockname(), client_ctx) as tls:
            tls.settimeout(0.3)
            with ticking() as ticks:
                start = time.monotonic()
                with pytest.raises(TimeoutError):
                    tls.recv(10)
                assert time.monotonic() - start >= 0.3
            assert ticks[0] > 0
            tls.setblocking(False)
            with pytest.raises(stdssl.SSLWantReadError):
                tls.recv(10)
            tls.setblocking(True)
            tls.sendall(b"still fine")
            assert recv_exactly(tls, 10) == b"still fine"


# --------------------------------------------------------- buffered records


def test_decrypted_data_is_read_without_waiting_on_the_fd(listener, server_ctx, client_ctx):
    records = [bytes([65 + i]) * 4000 for i in range(5)]
    all_sent = Event()
    finish = Event()

    def writer(conn):
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            for record in records:  # one write, one TLS record
                tls.write(record)
            all_sent.send()
            finish.wait()  # keep the connection open: no more bytes will come

    with serving(listener, writer):
        with tls_client(listener.getsockname(), client_ctx) as tls:
            all_sent.wait()
            # Small reads: the tail of the last record sits decrypted in
            # OpenSSL while the fd has nothing left; a read that waited on the
            # fd first would time out here.
            tls.settimeout(2.0)
            got, pending_seen = b"", 0
            expected = b"".join(records)
            while len(got) < len(expected):
                got += tls.recv(100)
                pending_seen = max(pending_seen, tls.pending())
            finish.send()
    assert got == expected
    assert pending_seen > 0


def test_makefile_line_protocol_over_tls(listener, server_ctx, client_ctx):
    def server(conn):
        with server_ctx.wrap_socket(conn, server_side=True) as tls, tls.makefile("rwb") as f:
            for line in f:
                f.write(b"> " + line)
                f.flush()

    with serving(listener, server):
        with tls_client(listener.getsockname(), client_ctx) as tls:
            with tls.makefile("rw", encoding="utf-8", newline="\n") as f:
                for text in ("first", "second", "x" * 50_000):
                    f.write(text + "\n")
                    f.flush()
                    assert f.readline() == f"> {text}\n"


# ---------------------------------------------------------------- lifecycle


def test_unwrap_returns_to_plain_text_on_both_sides(listener, server_ctx, client_ctx):
    def server(conn):
        tls = server_ctx.wrap_socket(conn, server_side=True)
        assert tls.recv(100) == b"secret"
        plain = tls.unwrap()
        try:
            plain.sendall(b"plain from server")
            return plain.recv(100)
        finally:
            plain.close()

    with serving(listener, server) as handlers:
        tls = tls_client(listener.getsockname(), client_ctx)
        tls.sendall(b"secret")
        plain = tls.unwrap()
        with plain:
            assert plain.recv(100) == b"plain from server"
            plain.sendall(b"plain from client")
            assert handlers[0].wait() == b"plain from client"
    with pytest.raises(ValueError):
        tls.unwrap()  # nothing left to unwrap


def test_closing_a_tls_socket_wakes_its_reader(listener, server_ctx, client_ctx):
    with serving(listener, tls_echo, server_ctx):
        tls = tls_client(listener.getsockname(), client_ctx)
        gt = spawn(tls.recv, 10)
        settle()
        assert not gt.dead
        tls.close()
        with pytest.raises(IOClosed):
            gt.wait()


# -------------------------------------------------------------- wrap_ssl


def test_wrap_ssl_with_cert_and_key_files(listener, pem_files):
    cafile, certfile, keyfile = pem_files

    def server(conn):
        tls = nettools.wrap_ssl(conn, certfile=certfile, keyfile=keyfile, server_side=True)
        with tls:
            assert isinstance(tls, gssl.SSLSocket)
            tls.sendall(tls.recv(100).upper())

    with serving(listener, server):
        raw = nettools.connect(listener.getsockname())
        tls = nettools.wrap_ssl(raw, ca_certs=cafile, server_hostname="localhost")
        with tls:
            assert isinstance(tls, gssl.SSLSocket)
            assert ("DNS", "localhost") in tls.getpeercert()["subjectAltName"]
            tls.sendall(b"via wrap_ssl")
            assert tls.recv(100) == b"VIA WRAP_SSL"


def test_wrap_ssl_on_a_listening_socket_hands_out_tls_connections(pem_files, client_ctx):
    # The eventlet idiom: wrap the listener; accept() returns TLS sockets whose
    # handshake runs at their first read or write.
    _cafile, certfile, keyfile = pem_files
    listener = nettools.wrap_ssl(
        nettools.listen((LOCAL, 0)), certfile=certfile, keyfile=keyfile, server_side=True
    )

    def server():
        conn, _ = listener.accept()
        with conn:
            assert isinstance(conn, gssl.SSLSocket) and conn.version() is None
            conn.sendall(conn.recv(100)[::-1])
            assert conn.version() is not None

    gt = spawn(server)
    try:
        raw = gsocket.create_connection(listener.getsockname())
        tls = client_ctx.wrap_socket(
            raw, server_hostname="localhost", do_handshake_on_connect=False
        )
        with tls:
            tls.do_handshake()  # the explicit form
            tls.sendall(b"abc")
            assert tls.recv(100) == b"cba"
        gt.wait()
    finally:
        gt.kill()
        listener.close()


def test_a_client_that_never_handshakes_does_not_hold_up_the_accept_loop(
    pem_files, client_ctx
):
    _cafile, certfile, keyfile = pem_files
    listener = nettools.wrap_ssl(
        nettools.listen((LOCAL, 0)), certfile=certfile, keyfile=keyfile, server_side=True
    )

    def serve(conn):
        with conn:
            try:
                conn.sendall(b"hello " + conn.recv(8))
            except (OSError, Timeout):
                pass

    def accept_loop():
        while True:
            conn, _ = listener.accept()
            conn.settimeout(10)
            spawn(serve, conn)

    loop = spawn(accept_loop)
    try:
        silent = gsocket.create_connection(listener.getsockname())  # connects, says nothing
        good = client_ctx.wrap_socket(
            gsocket.create_connection(listener.getsockname()), server_hostname="localhost"
        )
        with Timeout(10), good:
            good.sendall(b"good")
            assert good.recv(16) == b"hello good"
        silent.close()
    finally:
        loop.kill()
        listener.close()


def test_wrap_ssl_makes_a_stdlib_context_green(listener, server_ctx, ca):
    ctx = stdssl.create_default_context()  # a plain stdlib context
    ca.configure_trust(ctx)
    with serving(listener, tls_echo, server_ctx):
        raw = nettools.connect(listener.getsockname())
        # The echo server runs in a greenthread of this thread: a blocking
        # handshake would deadlock, so passing the test proves it is green.
        tls = nettools.wrap_ssl(raw, context=ctx, server_hostname="localhost")
        with tls:
            assert isinstance(tls, gssl.SSLSocket)
            tls.sendall(b"green")
            assert tls.recv(10) == b"green"


# ------------------------------------------------------------ verification


@pytest.mark.parametrize("case", ["untrusted ca", "wrong hostname"])
def test_verification_failures(listener, server_ctx, client_ctx, case):
    server_errors = []

    def server(conn):
        try:
            server_ctx.wrap_socket(conn, server_side=True).close()
        except (stdssl.SSLError, OSError) as exc:
            server_errors.append(exc)
        finally:
            conn.close()

    if case == "untrusted ca":
        ctx = gssl.create_default_context()
        trustme.CA().configure_trust(ctx)  # some other CA
        hostname = "localhost"
    else:
        ctx, hostname = client_ctx, "not-localhost.example"
    with serving(listener, server) as handlers:
        with pytest.raises(stdssl.SSLCertVerificationError) as info:
            tls_client(listener.getsockname(), ctx, hostname=hostname, timeout=10)
        assert info.value.verify_code in (19, 20, 62)  # self-signed/unknown issuer/hostname
        # The server's handshake fails too once the client has gone; killing it
        # halfway instead would leave its socket to the garbage collector.
        with Timeout(10):
            handlers[0].wait()
    assert len(server_errors) == 1


# --------------------------------------------------------- unmodified client

CLIENT_SCRIPT = textwrap.dedent(
    """
    import hashlib, socket, ssl, sys

    host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctx = ssl.create_default_context(cafile=cafile)
    sent = got = b""
    with socket.create_connection((host, port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            for i in range(64):
                chunk = bytes([i]) * (1000 + 997 * i)
                tls.sendall(chunk)
                sent += chunk
                while len(got) < len(sent):
                    got += tls.recv(65536)
            same = hashlib.sha256(got).digest() == hashlib.sha256(sent).digest()
            print(tls.version(), same)
    """
)


def test_unmodified_stdlib_client_in_a_subprocess(listener, server_ctx, pem_files):
    cafile = pem_files[0]
    port = listener.getsockname()[1]
    with serving(listener, tls_echo, server_ctx) as handlers:
        # The child runs in another process; wait for it in a thread so the
        # hub keeps serving meanwhile.
        result = tpool.execute(
            subprocess.run,
            [sys.executable, "-c", CLIENT_SCRIPT, LOCAL, str(port), cafile],
            capture_output=True,
            text=True,
            timeout=45,
        )
        assert result.returncode == 0, result.stderr
        version, ok = result.stdout.split()
        assert version.startswith("TLS") and ok == "True"
        assert handlers[0].wait() == sum(1000 + 997 * i for i in range(64))
