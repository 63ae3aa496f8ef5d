"""Fixtures of the server tests."""

from __future__ import annotations

import pytest

from nettools import Server


@pytest.fixture
def servers():
    """Collects Servers made in a test and stops whatever is left running."""
    made: list[Server] = []
    yield made
    for server in made:
        if not server.stopped:
            server.stop(0)
