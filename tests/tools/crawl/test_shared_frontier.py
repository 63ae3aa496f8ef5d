"""The Redis state's parts against a real Redis (Debian's redis-server): redis-py
on green sockets leaves the hub free, and the scripts keep per-host politeness
and leases for every process -- two clients of one state, as two processes
have, see each other's Retry-After hold, Crawl-delay spacing, settled host and
leases."""

from __future__ import annotations

import json
import time

import pytest

import nettools
from nettools.tools.crawl import Crawler
from nettools.tools.crawl.state import parse_state
from nettools.tools.crawl.state.frontier import SharedFrontier
from nettools.tools.crawl.state.greenredis import green_redis

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_redis_py_needs_green_sockets_to_leave_the_hub_free(redis_server, transport):
    # A command that waits in Redis (BLPOP for 0.5 s) while a greenthread ticks.
    import redis

    def ticks_while_waiting(client) -> int:
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                nettools.sleep(0.01)

        ticker = nettools.spawn(tick)
        nettools.sleep(0)
        client.blpop("nothing", timeout=0.5)
        ticker.kill()
        return ticks

    if transport == "unix":
        stock = redis.Redis(unix_socket_path=redis_server.socket)
        green = green_redis(path=redis_server.socket)
    else:
        stock = redis.Redis(host="127.0.0.1", port=redis_server.port)
        green = green_redis(host="127.0.0.1", port=redis_server.port)
    assert ticks_while_waiting(stock) <= 2  # the whole hub waited in the OS
    assert ticks_while_waiting(green) >= 20  # the others ran meanwhile
    green.connection_pool.disconnect()


HOST = "site.example"


@pytest.fixture
def two_processes(redis_server):
    """Two clients of one crawl state (as two processes have): a crawl with
    ``--per-host 2`` whose host has answered once, and four more links queued."""
    crawler = Crawler([f"http://{HOST}/"], per_host=2)
    a, b = (SharedFrontier.open(parse_state(redis_server.state)) for _ in range(2))
    a.create(crawler.identity, {**crawler.settings, "lease": 30.0})
    a.seed([(f"http://{HOST}/", "p", HOST)], last=True)
    (home,), _ = a.lease("a", 1, 30.0)
    links = [(f"http://{HOST}/{n}.html", "p", HOST, "") for n in range(4)]
    a.finish("a", home, {"status": 200}, answered=True, requests=1, worker="a",
             targets=links, via=False)  # fmt: skip
    yield a, b
    a.close()
    b.close()


def test_a_retry_after_holds_the_host_for_every_process(two_processes):
    a, b = two_processes
    (first,), _ = a.lease("a", 1, 30.0)
    a.hold(HOST, 5.0)  # a 429 with Retry-After: 5 on the first link
    jobs, ready_in = b.lease("b", 4, 30.0)  # the host's second slot is free, but held off
    assert jobs == [] and 4.0 < ready_in <= 5.0
    wait, failure = b.respace(HOST)  # another request of a visit under way waits too
    assert 4.0 < wait <= 5.0 and failure is None


def test_a_delay_spaces_the_leases_of_every_process(two_processes):
    a, b = two_processes
    a.set_delay(HOST, 3.0)  # robots.txt's Crawl-delay, read by one process
    (first,), _ = a.lease("a", 4, 30.0)  # one link: the next start is 3 s away
    jobs, ready_in = b.lease("b", 4, 30.0)
    assert first.delay == 3.0
    assert jobs == [] and 2.0 < ready_in <= 3.0


def test_a_host_settled_by_one_process_fails_every_link_for_all(two_processes):
    a, b = two_processes
    assert a.settle(HOST, "connect", "connection refused") == 4  # the queued links, at once
    jobs, ready_in = b.lease("b", 4, 30.0)
    assert jobs == [] and ready_in is None
    assert b.respace(HOST)[1] == ("connect", "connection refused")
    assert b.meta()["done"]  # nothing left to visit


def test_a_late_answer_is_ignored_once_the_lease_went_to_another(two_processes):
    # A process cut off from Redis (a network split) past its lease: the link
    # goes to another, and only that one's answer counts.
    a, b = two_processes
    (job,), _ = a.lease("a", 1, 0.05)
    time.sleep(0.1)  # the lease runs out
    assert b.reap() == 1 and b.meta()["reissued"] == "1"
    (again,), _ = b.lease("b", 1, 30.0)
    assert again.url == job.url
    late = {"status": 500, "error": "late"}
    assert a.finish("a", job, late, answered=True, requests=1, worker="a", targets=[],
                    via=False) == (False, [])  # fmt: skip
    assert b.finish("b", again, {"status": 200}, answered=True, requests=1, worker="b",
                    targets=[], via=False) == (True, [])  # fmt: skip
    outcome = json.loads(b.redis.hget(b.key("o"), job.id))
    assert outcome["status"] == 200
    assert {k.decode(): int(v) for k, v in b.scan("w")} == {"a": 1, "b": 1}  # a: the home page
