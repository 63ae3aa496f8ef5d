"""Fixtures of the green modules' tests."""

from __future__ import annotations

import pytest

from nettools.green import socket as gsocket


@pytest.fixture
def listener():
    """A green TCP socket listening on 127.0.0.1, port 0."""
    sock = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    yield sock
    sock.close()
