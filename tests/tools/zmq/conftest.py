"""Fixtures of the zmq tools' tests."""

from __future__ import annotations

import pytest
import zmq


@pytest.fixture
def ctx():
    """A plain pyzmq context for the test's peers; destroyed afterwards."""
    context = zmq.Context()
    yield context
    context.destroy(linger=0)
