"""The client's libcurl loop between requests: a connection back in libcurl's cache
stays registered, asleep, and whatever happens to it meanwhile (its server closes
it, libcurl replaces it under the same number) neither spins the loop nor loses
the next request.  And the one timer that watches both a request's read timeout
and its time budget.  The servers are green, on the test's own hub."""

from __future__ import annotations

import os

import pytest

import nettools
from nettools.web.client import HttpClient
from nettools.web.client.curlloop import curl_loop

pytestmark = pytest.mark.timeout(30)

LOCAL = "127.0.0.1"
#: The loop's rounds allowed while one quiet request is in flight (a spin makes thousands).
QUIET_ROUNDS = 50


class DroppingServer:
    """Answers each request on a connection kept alive, and closes every open
    connection when ``drop()`` is called; ``accepted`` counts connections."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open: list[nettools.Event] = []
        self.closed = 0
        self.server = nettools.Server(nettools.listen((LOCAL, 0)), self.handle, name="dropper")
        self.server.start()
        self.url = f"http://{LOCAL}:{self.server.address[1]}"

    def handle(self, sock, addr):
        self.accepted += 1
        drop = nettools.Event()
        self.open.append(drop)
        f = sock.makefile("rb")

        def answer():
            while (line := f.readline()) != b"":
                if line == b"\r\n":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        reader = nettools.spawn(answer)
        drop.wait()
        reader.kill()
        f.close()
        sock.close()
        self.closed += 1

    def drop(self) -> None:
        """Close every connection now, and return once they are closed."""
        events, self.open = self.open, []
        for e in events:
            e.send(True)
        while self.closed < self.accepted:
            nettools.sleep(0.001)

    def stop(self) -> None:
        self.drop()
        self.server.stop(0)


@pytest.fixture
def dropper():
    srv = DroppingServer()
    yield srv
    srv.stop()


def is_socket(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:
        return False


def slow_app(env, start_response):
    nettools.sleep(0.2)
    start_response("200 OK", [("Content-Length", "4")])
    return [b"slow"]


def test_a_cached_connection_its_server_closed_does_not_spin_the_loop(dropper):
    from nettools.web import wsgi

    slow = wsgi.WSGIServer((LOCAL, 0), slow_app, log_output=False).start()
    loop = curl_loop()
    rounds = []
    service = loop._service
    try:
        def asleep() -> set[int]:
            """Sleeping registrations of sockets (libcurl's eventfd sleeps too)."""
            return {fd for fd, mask in loop._masks.items() if mask < 0 and is_socket(fd)}

        with HttpClient(proxy_from_env=False) as c:
            before = asleep()
            assert c.get(dropper.url + "/1").body == b"ok"
            cached = asleep() - before
            assert len(cached) == 1, "the cached connection was not kept registered"
            dropper.drop()  # its FIN now waits in the cached connection
            loop._service = lambda: (rounds.append(1), service())
            assert c.get(f"http://{LOCAL}:{slow.address[1]}/").body == b"slow"
            assert len(rounds) < QUIET_ROUNDS
            assert not cached & asleep()  # heard of once, then forgotten
    finally:
        loop.__dict__.pop("_service", None)
        slow.stop(0)


def test_a_cached_connection_its_server_closed_is_replaced(dropper):
    with HttpClient(proxy_from_env=False) as c:
        for i in range(5):
            # No request runs while it is closed, so the loop has not heard of the
            # close: libcurl finds the connection dead, closes it and connects again,
            # most often under the same number.
            assert c.get(f"{dropper.url}/{i}").body == b"ok"
            dropper.drop()
    assert dropper.accepted == 5


def test_a_cached_connection_is_reused_many_times(dropper):
    with HttpClient(proxy_from_env=False) as c:
        for i in range(50):
            assert c.get(f"{dropper.url}/{i}").body == b"ok"
    assert dropper.accepted == 1


def test_urls_of_one_host_on_other_ports_and_spellings_go_where_they_say(dropper):
    other = DroppingServer()
    try:
        with HttpClient(proxy_from_env=False) as c:
            for url in (dropper.url, other.url, dropper.url.upper(), other.url + "?q#f"):
                assert c.get(url).body == b"ok"
        assert (dropper.accepted, other.accepted) == (1, 1)
    finally:
        other.stop()


def trickle_app(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return trickle()


def trickle():
    for _ in range(400):  # a byte every 10 ms for 4 s
        nettools.sleep(0.01)
        yield b"."


def test_a_dripping_answer_passes_read_checks_until_the_budget_runs_out():
    from nettools.web import wsgi
    from nettools.web.client import FetchError

    srv = wsgi.WSGIServer((LOCAL, 0), trickle_app, log_output=False).start()
    checks = []
    loop = curl_loop()
    hub = loop.hub
    schedule = hub.schedule
    try:
        # The read timeout's looks (every 0.1 s, each finding fresh bytes) come first;
        # the budget's end, between two of them, is what stops the request.
        hub.schedule = lambda s, cb, *a: (checks.append(s) if cb.__name__ == "_check_time"
                                          else None, schedule(s, cb, *a))[1]  # fmt: skip
        with HttpClient(proxy_from_env=False, read_timeout=0.1, timeout=0.45) as c:
            with pytest.raises(FetchError) as info:
                c.get(f"http://{LOCAL}:{srv.address[1]}/")
        assert "no complete response within 0.45s" in str(info.value)
        assert len(checks) >= 4 and checks[0] == 0.1
    finally:
        hub.__dict__.pop("schedule", None)
        srv.stop(0)


def test_work_on_a_batch_of_answers_does_not_hold_back_the_requests_it_starts():
    # Two answers handled in one round of the loop.  The first greenthread works
    # (longer than START_EVERY) and asks for another page; the second works until the
    # server has that request: it gets it only if the first's request went out
    # before the whole batch's work was done.
    import threading
    import time

    from helpers.wsgi import ServerThread

    from nettools.patcher import original
    from nettools.web.client.curlloop import START_EVERY

    arrived: list[str] = []
    next_seen = threading.Event()
    answer = threading.Event()  # set by the test once it holds its hub

    def app(env, start_response):
        if env["PATH_INFO"] == "/first":
            arrived.append("first")
            with nettools.Timeout(10, False):
                while not answer.is_set():  # both in and the test ready: answer together
                    nettools.sleep(0.001)
        else:
            next_seen.set()
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    worked: list[bool] = []

    def visit(c: HttpClient, url: str) -> None:
        assert c.get(url + "/first").body == b"ok"
        turn = len(worked)
        worked.append(False)
        if turn == 0:
            end = time.monotonic() + 2 * START_EVERY
            while time.monotonic() < end:  # work, without letting the hub run
                pass
        else:
            worked[turn] = next_seen.wait(5)  # a real thread's event: blocks the hub
        assert c.get(url + "/next").body == b"ok"

    with ServerThread(app) as srv, HttpClient(proxy_from_env=False) as c:
        loop = curl_loop()
        visits = [nettools.spawn(visit, c, srv.url) for _ in range(2)]
        while len(arrived) < 2:
            nettools.sleep(0.001)
        # Hold the hub until both answers are in, so that one round finds both
        # (the server answers only now: none can be read while the hub ran above).
        socks = [fd for fd in loop._masks if is_socket(fd)]
        answer.set()
        ready: list[int] = []
        for _ in range(6):
            ready = original("select").select(socks, [], [], 5)[0]
            if len(ready) == len(socks):
                break
        for gt in visits:
            gt.wait()
    assert len(socks) == 2 and worked == [False, True]
