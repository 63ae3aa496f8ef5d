"""UDP rules on a ``Forwarder`` in this process: sessions per client, real DNS
messages (dnslib), 10,000 datagrams each checked, sizes up to 64 KiB, limits."""

from __future__ import annotations

import hashlib
import os

import pytest
from helpers.green import settle

import nettools
from nettools import GreenPool, Timeout, spawn
from nettools.green import socket

dnslib = pytest.importorskip("dnslib")

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


class UdpServer:
    """A green UDP server on loopback: ``answer(data) -> reply or None``."""

    def __init__(self, answer) -> None:
        self.sock = nettools.net.bind_udp((LOCAL, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.peers: set = set()
        self.gt = spawn(self._run)

    def _run(self) -> None:
        while True:
            data, addr = self.sock.recvfrom(65536)
            self.peers.add(addr)
            reply = self.answer(data)
            if reply is not None:
                self.sock.sendto(reply, addr)

    def close(self) -> None:
        self.gt.kill()
        self.sock.close()


@pytest.fixture
def servers():
    made: list = []
    yield lambda answer: made.append(UdpServer(answer)) or made[-1]
    for server in made:
        server.close()


def client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(10)
    return sock


def dns_answer(data: bytes) -> bytes:
    query = dnslib.DNSRecord.parse(data)
    reply = query.reply()
    name = str(query.q.qname)
    reply.add_answer(dnslib.RR(name, dnslib.QTYPE.A, rdata=dnslib.A("192.0.2.7"), ttl=60))
    return reply.pack()


def test_dns_questions_get_their_answers_through_the_forwarder(servers, forwarder):
    dns = servers(dns_answer)
    fwd = forwarder(f"udp:0:{LOCAL}:{dns.port}")
    addr = fwd.addresses[0]

    clients = set()

    def ask(i: int) -> tuple[int, str]:
        with client() as sock:
            sock.bind((LOCAL, 0))
            clients.add(sock.getsockname())  # a closed client's port may be taken again
            query = dnslib.DNSRecord.question(f"host{i}.example.test", "A")
            sock.sendto(query.pack(), addr)
            reply = dnslib.DNSRecord.parse(sock.recvfrom(65536)[0])
            assert reply.header.id == query.header.id
            return i, str(reply.rr[0].rdata)

    with Timeout(20):
        answers = list(GreenPool(20).imap(ask, range(50)))
    assert answers == [(i, "192.0.2.7") for i in range(50)]
    assert fwd.stats.connections == len(clients)  # a session per client address
    assert len(dns.peers) == len(clients)  # one upstream socket per session


def test_ten_thousand_datagrams_each_arrive_whole(servers, forwarder):
    echo = servers(lambda data: data)
    fwd = forwarder(f"udp:0:{LOCAL}:{echo.port}")
    addr = fwd.addresses[0]
    rng = os.urandom(70_000)
    sizes = [1, 65_507, 1472, 9000] + [(i * 7919) % 4000 + 1 for i in range(9_996)]
    sent = {}
    got = {}
    with client() as sock, Timeout(50):
        window = 16  # datagrams in flight: loopback buffers never overflow
        for seq, size in enumerate(sizes):
            body = seq.to_bytes(4, "big") + rng[seq % 1000 : seq % 1000 + size - 1]
            body = body[:size] if size >= 4 else body
            sent[seq] = hashlib.sha256(body).digest()
            sock.sendto(body, addr)
            if seq - len(got) >= window:
                data = sock.recv(65536)
                got[int.from_bytes(data[:4], "big")] = hashlib.sha256(data).digest()
        while len(got) < len(sizes):
            data = sock.recv(65536)
            got[int.from_bytes(data[:4], "big")] = hashlib.sha256(data).digest()
    assert got == sent
    assert fwd.stats.connections == 1  # one client, one session
    assert fwd.stats.datagrams_dropped == 0


def test_session_limit_drops_and_counts_further_clients(servers, forwarder):
    echo = servers(lambda data: data)
    fwd = forwarder(f"udp:0:{LOCAL}:{echo.port}", udp_max_sessions=2)
    addr = fwd.addresses[0]
    a, b, c = client(), client(), client()
    for sock in (a, b):
        sock.sendto(b"in", addr)
        assert sock.recv(100) == b"in"
    c.settimeout(0.3)
    c.sendto(b"turned away", addr)
    with pytest.raises(TimeoutError):
        c.recv(100)
    assert fwd.stats.datagrams_dropped == 1
    for sock in (a, b, c):
        sock.close()


def test_idle_sessions_end_after_their_ttl(servers, forwarder):
    echo = servers(lambda data: data)
    fwd = forwarder(f"udp:0:{LOCAL}:{echo.port}", udp_ttl=0.2)
    addr = fwd.addresses[0]
    with client() as sock:
        sock.sendto(b"one", addr)
        assert sock.recv(100) == b"one"
        (proxy,) = fwd.proxies.values()
        assert len(proxy.sessions) == 1
        with Timeout(5):
            while proxy.sessions:
                nettools.sleep(0.05)
        sock.sendto(b"two", addr)
        assert sock.recv(100) == b"two"
    settle()
    assert fwd.stats.connections == 2


def test_a_refusing_target_is_skipped_and_the_datagram_goes_to_the_next(servers, forwarder):
    echo = servers(lambda data: b"from the living one: " + data)
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind((LOCAL, 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # ICMP port unreachable from now on
    fwd = forwarder(f"udp:0:{LOCAL}:{dead_port},{LOCAL}:{echo.port}", balance="first")
    with client() as sock:
        sock.sendto(b"hello", fwd.addresses[0])
        assert sock.recv(100) == b"from the living one: hello"
