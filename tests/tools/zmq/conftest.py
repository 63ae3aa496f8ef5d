"""Fixtures of the zmq tools' tests."""

from __future__ import annotations

import pytest
import zmq

from nettools.green import zmq as green_zmq


@pytest.fixture
def ctx():
    """A plain pyzmq context for peers of a subprocess; destroyed afterwards."""
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def green_ctx():
    """A green pyzmq context, for the tools under test and their peers on this
    thread's hub (a plain socket's wait would stop the hub); destroyed afterwards."""
    context = green_zmq.Context()
    yield context
    context.destroy(linger=0)
