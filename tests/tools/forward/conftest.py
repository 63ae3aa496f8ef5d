"""Fixtures of the forwarder's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.sockets import Target, echo_handler


@pytest.fixture
def echo_target() -> Iterator[Target]:
    """A stdlib echo server (half-closes back at EOF) for the forwarder to reach."""
    target = Target(echo_handler)
    yield target
    target.close()
