"""The PROXY protocol both ways, against HAProxy (Debian's): HAProxy in front of
the forwarder sending it, and HAProxy behind the forwarder accepting it.  Either
way the far end must see the real client's address and port."""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from helpers.sockets import Target, recv_all
from proxyprotocol import ProxyProtocolIncompleteError
from proxyprotocol.detect import ProxyProtocolDetect

import nettools
from nettools import tpool

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("haproxy") is None,
                       reason="haproxy is not installed (make system-deps installs it)"),
]

LOCAL = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return s.getsockname()[1]


class HAProxy:
    """``haproxy -f CONFIG`` in the foreground; ``port`` is its frontend's."""

    def __init__(self, tmp_path: Path, body: str) -> None:
        self.port = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            "global\n  maxconn 100\n"
            "defaults\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
            + body.format(port=self.port)
        )
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((LOCAL, self.port), timeout=1).close()
                break
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise AssertionError(
                        f"haproxy did not start: {self.proc.communicate()[0]}") from exc
                time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=10)


@pytest.fixture
def haproxy(tmp_path):
    made: list[HAProxy] = []
    yield lambda body: made.append(HAProxy(tmp_path, body)) or made[-1]
    for h in made:
        h.close()


@pytest.mark.parametrize("sent_by_haproxy", ["send-proxy", "send-proxy-v2"])
@pytest.mark.parametrize("sent_on", ["v1", "v2"])
def test_haproxy_in_front_the_real_client_reaches_the_target(haproxy, forwarder,
                                                             sent_by_haproxy, sent_on):
    seen: queue.Queue = queue.Queue()

    def report(conn: socket.socket) -> None:
        """Read the PROXY header with the library nettools uses, answer with it."""
        data = conn.recv(4096)
        while True:
            try:
                result = ProxyProtocolDetect().unpack(data)
                break
            except ProxyProtocolIncompleteError:
                more = conn.recv(4096)
                if not more:
                    return  # haproxy's readiness probe: a header, then nothing
                data += more
        seen.put(result.peername)
        conn.sendall(b"%s:%d" % (result.peername[0].encode(), result.peername[1]))

    target = Target(report)
    try:
        fwd = forwarder(f"0:{LOCAL}:{target.port}", accept_proxy=True, send_proxy=sent_on)
        fwd_port = fwd.addresses[0][1]
        front = haproxy(
            "listen front\n  mode tcp\n  bind 127.0.0.1:{port}\n"
            f"  server fwd 127.0.0.1:{fwd_port} {sent_by_haproxy}\n"
        )

        def client() -> tuple[tuple, bytes]:
            with socket.create_connection((LOCAL, front.port), timeout=10) as s:
                # No half-close first: a client FIN that reaches HAProxy before its
                # connection to the forwarder is up makes it abort the session (CC).
                # The target answers on the header alone and closes.
                me = s.getsockname()
                return me, recv_all(s)

        me, answer = tpool.execute(client)
        assert answer == b"%s:%d" % (me[0].encode(), me[1])  # two hops, still the client
    finally:
        target.close()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_haproxy_behind_accepts_the_header_the_forwarder_sends(haproxy, forwarder, version):
    back = haproxy(
        "frontend back\n  mode http\n  bind 127.0.0.1:{port} accept-proxy\n"
        '  http-request return status 200 content-type text/plain '
        'lf-string "%[src]:%[src_port]"\n'
    )
    fwd = forwarder(f"0:{LOCAL}:{back.port}", send_proxy=version)

    def client() -> tuple[tuple, bytes]:
        with socket.create_connection(fwd.addresses[0], timeout=10) as s:
            me = s.getsockname()
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            return me, recv_all(s)

    me, response = tpool.execute(client)
    assert response.startswith(b"HTTP/1.0 200") or response.startswith(b"HTTP/1.1 200")
    assert response.endswith(b"%s:%d" % (me[0].encode(), me[1]))


def test_a_client_without_a_header_is_turned_away(forwarder, caplog):
    caplog.set_level("INFO", logger="nettools.forward")
    target = Target(lambda conn: conn.sendall(b"never"))
    try:
        fwd = forwarder(f"0:{LOCAL}:{target.port}", accept_proxy=True)
        with nettools.connect(fwd.addresses[0]) as sock:
            sock.settimeout(10)
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                assert recv_all(sock) == b""
            except ConnectionResetError:
                pass
        assert target.accepted == 0
    finally:
        target.close()
    assert "no valid PROXY protocol header" in caplog.text
