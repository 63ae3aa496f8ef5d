"""Several targets per rule: round-robin, first-available, failover when a
target dies mid-run, passive and active health."""

from __future__ import annotations

import socket
import threading

import pytest
from helpers.green import settle
from helpers.sockets import Target, echo_through

import nettools
from nettools import GreenPool, Timeout, sleep, tpool
from nettools.tools.forward import Forwarder, RuleOptions, open_rules

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


def named(name: bytes):
    """A target that answers every connection with its name, then echoes."""

    def handler(conn: socket.socket) -> None:
        conn.sendall(name)
        while data := conn.recv(65536):
            conn.sendall(data)

    return handler


def kill(target: Target) -> None:
    """The target dies: its listener stops at once (connections are refused)."""
    try:
        target.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
    except OSError:
        pass
    target.close()


@pytest.fixture
def targets():
    made: list[Target] = []

    def make(name: bytes) -> Target:
        made.append(Target(named(name)))
        return made[-1]

    yield make
    for target in made:
        target.close()


@pytest.fixture
def forwarder():
    made: list[Forwarder] = []

    def start(rule: str, **options) -> Forwarder:
        fwd = Forwarder(open_rules([rule], options=RuleOptions(**options)),
                        connect_timeout=2).start()
        made.append(fwd)
        return fwd

    yield start
    for fwd in made:
        fwd.stop(0)


def who(fwd: Forwarder) -> bytes:
    """The name of the target a new connection reaches (b"" if none)."""
    with nettools.connect(fwd.addresses[0]) as sock:
        sock.settimeout(10)
        return sock.recv(1)


def test_round_robin_spreads_new_connections(targets, forwarder):
    a, b = targets(b"a"), targets(b"b")
    fwd = forwarder(f"0:{LOCAL}:{a.port},{LOCAL}:{b.port}")
    assert [who(fwd) for _ in range(6)] == [b"a", b"b"] * 3


def test_first_keeps_to_the_first_living_target(targets, forwarder):
    a, b = targets(b"a"), targets(b"b")
    fwd = forwarder(f"0:{LOCAL}:{a.port},{LOCAL}:{b.port}", balance="first")
    assert [who(fwd) for _ in range(4)] == [b"a"] * 4
    kill(a)
    assert [who(fwd) for _ in range(4)] == [b"b"] * 4


@pytest.mark.parametrize("balance", ["round-robin", "first"])
def test_a_target_killed_mid_run_costs_no_new_connection(targets, forwarder, balance):
    a, b = targets(b"a"), targets(b"b")
    fwd = forwarder(f"0:{LOCAL}:{a.port},{LOCAL}:{b.port}", balance=balance,
                    fail_timeout=30)
    killed = threading.Event()

    def client(i: int) -> bytes:
        if i == 100:
            kill(a)  # mid-run: its listener goes, connections to it are refused
            killed.set()
        payload = b"request %d" % i
        try:
            return tpool.execute(echo_through, fwd.addresses[0], payload)
        except OSError:
            # Only a connection already made to the target as it died can
            # fail (reset by it), as it would without a forwarder.
            return b"failed"

    with Timeout(50):
        results = list(GreenPool(10).imap(client, range(300)))
    assert killed.is_set()
    # Every connection started after the kill went to the living target.
    after = results[100:]
    assert [r for i, r in enumerate(after, 100) if r != b"b" + b"request %d" % i] == []
    (proxy,) = fwd.proxies.values()
    assert proxy.targets.is_down(proxy.targets.targets[0])


def test_passive_health_skips_a_refusing_target_for_a_while(targets, forwarder):
    a, b = targets(b"a"), targets(b"b")
    port_a = a.port
    kill(a)
    fwd = forwarder(f"0:{LOCAL}:{port_a},{LOCAL}:{b.port}", fail_timeout=0.3)
    (proxy,) = fwd.proxies.values()
    assert who(fwd) == b"b"
    assert proxy.targets.is_down(proxy.targets.targets[0])
    revived = Target(named(b"A"), address=(LOCAL, port_a))
    try:
        assert [who(fwd) for _ in range(4)] == [b"b"] * 4  # still skipped
        sleep(0.35)
        assert sorted(who(fwd) for _ in range(4)) == [b"A", b"A", b"b", b"b"]
    finally:
        revived.close()


def test_active_checks_find_a_dead_target_and_its_return(targets, forwarder):
    a, b = targets(b"a"), targets(b"b")
    port_a = a.port
    fwd = forwarder(f"0:{LOCAL}:{port_a},{LOCAL}:{b.port}", health_check=0.05,
                    fail_timeout=0.05)
    (proxy,) = fwd.proxies.values()
    target_a = proxy.targets.targets[0]
    kill(a)
    with Timeout(10):
        while not proxy.targets.is_down(target_a):
            sleep(0.02)  # found by the checks: no client had to fail on it
    assert fwd.stats.connections == 0
    revived = Target(named(b"A"), address=(LOCAL, port_a))
    try:
        with Timeout(10):
            while proxy.targets.is_down(target_a):
                sleep(0.02)
    finally:
        revived.close()


def test_all_targets_down_closes_the_client_and_says_so(forwarder, caplog):
    caplog.set_level("INFO", logger="nettools.forward")
    holders = [socket.socket() for _ in range(2)]
    for h in holders:
        h.bind((LOCAL, 0))
    ports = [h.getsockname()[1] for h in holders]
    fwd = forwarder(f"0:{LOCAL}:{ports[0]},{LOCAL}:{ports[1]}")
    assert who(fwd) == b""
    settle()
    for h in holders:
        h.close()
    assert f"cannot connect to {LOCAL}:{ports[0]}, {LOCAL}:{ports[1]}" in caplog.text
