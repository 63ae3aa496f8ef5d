"""Fixtures shared by the crawl tests."""

from __future__ import annotations

import pytest
from helpers.redis_server import RedisServer, free_port


@pytest.fixture(params=["memory", "sqlite", "redis"])
def state(request, tmp_path):
    """The ``--state`` options of a crawl kept in memory, in SQLite or in a real
    Redis: the crawl's rules must hold the same in each."""
    if request.param == "memory":
        yield ()
    elif request.param == "sqlite":
        yield ("--state", f"sqlite:{tmp_path}/crawl.db")
    else:
        with RedisServer(tmp_path / "redis") as server:
            yield ("--state", server.state)


@pytest.fixture
def redis_server(tmp_path):
    """A Redis on a unix socket and on a loopback TCP port."""
    with RedisServer(tmp_path / "redis", port=free_port()) as server:
        yield server
