"""net.listen's options: SO_REUSEPORT and the warning about it on port 0."""

from __future__ import annotations

import socket as stdsocket
import warnings

import pytest

from nettools.net import ReuseRandomPortWarning, listen

pytestmark = pytest.mark.timeout(30)

LOCAL = "127.0.0.1"


def test_reuse_port_on_port_0_warns_and_still_sets_the_option():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sock = listen((LOCAL, 0), reuse_port=True)
    try:
        assert [w.category for w in caught] == [ReuseRandomPortWarning]
        assert caught[0].filename == __file__  # points at the caller's line
        assert sock.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEPORT) == 1
    finally:
        sock.close()


def test_reuse_port_on_a_fixed_port_or_without_it_does_not_warn():
    # A plain socket holds a port with SO_REUSEPORT, so listen's can join it.
    holder = stdsocket.socket()
    holder.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEPORT, 1)
    holder.bind((LOCAL, 0))
    holder.listen()
    port = holder.getsockname()[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = listen((LOCAL, 0))
        twin = listen((LOCAL, port), reuse_port=True)
    try:
        assert twin.getsockname()[1] == port
        assert twin.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEPORT) == 1
        assert plain.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEPORT) == 0
    finally:
        for s in (holder, plain, twin):
            s.close()
