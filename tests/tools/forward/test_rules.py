"""The forward tool as a library: rules from strings, a Forwarder in this process.

``test_cli_forward`` drives ``nettools forward`` through its entry point; here
the same tool runs in the test's own hub, as a Python user would run it.
"""

from __future__ import annotations

import os

import pytest
from helpers.sockets import recv_all

import nettools
from nettools.green import socket
from nettools.tools.forward import Forwarder, ForwardStats, open_rules, parse_rule
from nettools.tools.plumbing.service import ServiceError

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


@pytest.fixture
def echo_target():
    """A green echo server that answers EOF with ``bye`` and then closes."""

    def echo(conn, addr):
        data = recv_all(conn)
        conn.sendall(data + b"bye")

    server = nettools.Server(nettools.listen((LOCAL, 0)), echo).start()
    yield server.address[1]
    server.stop(0)


def test_rules_from_strings_relay_with_half_close_both_ways(echo_target):
    stats = ForwardStats()
    fwd = Forwarder(open_rules([f"{LOCAL}:0:{LOCAL}:{echo_target}"]), stats=stats).start()
    try:
        (addr,) = fwd.addresses
        assert addr[0] == LOCAL and addr[1] != 0
        client = socket.create_connection(addr)
        client.sendall(b"hello ")
        client.shutdown(socket.SHUT_WR)  # the target sees EOF, and still answers
        assert recv_all(client) == b"hello bye"
        client.close()
    finally:
        fwd.stop(5)
    assert (stats.connections, stats.bytes_in, stats.bytes_out, stats.errors) == (1, 6, 9, 0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("7000", "missing target port"),
        ("7000:0", "the target port cannot be 0"),
        (":7000:22", "empty listen host"),
        ("7000:::1:22", "too many colons in the target"),
    ],
)
def test_a_bad_rule_string_is_a_value_error_saying_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_rule(text)
    with pytest.raises(ValueError, match=message):
        open_rules([text])


def test_a_rule_that_cannot_listen_closes_the_rules_already_open():
    taken = nettools.listen((LOCAL, 0))
    try:
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(ServiceError, match="address already in use") as caught:
            open_rules([f"{LOCAL}:0:22", f"{LOCAL}:{taken.getsockname()[1]}:22"])
        # Closed, not left for the garbage collector (the traceback keeps the
        # first rule's socket object alive).
        assert set(os.listdir("/proc/self/fd")) == before
        del caught
    finally:
        taken.close()
