"""nettools.green.select and nettools.green.selectors: level-exact, parking waits."""

from __future__ import annotations

import os
import selectors as stdlib_selectors
import socket
import time

import pytest
from helpers.green import settle, ticker
from helpers.isolated import run_isolated

import nettools
from nettools.green import select as gselect
from nettools.green import selectors as gselectors

pytestmark = pytest.mark.timeout(60)

SELECTORS = [
    gselectors.SelectSelector,
    gselectors.PollSelector,
    gselectors.EpollSelector,
    gselectors.DefaultSelector,
]


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _send_later(sock: socket.socket, delay: float = 0.1, data: bytes = b"x") -> None:
    nettools.spawn_after(delay, sock.send, data)


# ----------------------------------------------------------------- select()


def test_select_wakes_when_data_arrives(pair):
    a, b = pair
    ticks: list = []
    ticker(ticks)
    _send_later(b)
    start = time.monotonic()
    r, w, x = gselect.select([a], [], [], 5)
    assert r == [a] and w == [] and x == []
    assert time.monotonic() - start < 4
    assert len(ticks) == 5  # other greenthreads ran while select waited


def test_select_honours_timeouts(pair):
    a, _ = pair
    start = time.monotonic()
    assert gselect.select([a], [], [], 0.1) == ([], [], [])
    assert time.monotonic() - start >= 0.09
    assert gselect.select([a], [], [], 0) == ([], [], [])
    start = time.monotonic()
    assert gselect.select([], [], [], 0.05) == ([], [], [])  # a plain sleep
    assert time.monotonic() - start >= 0.04
    assert gselect.select([], [], [a], 0.05) == ([], [], [])


def test_select_returns_ready_objects_at_once(pair):
    a, b = pair
    b.send(b"y")
    assert gselect.select([a, b.fileno()], [b], [], 5) == ([a], [b], [])
    r, w, _ = gselect.select((s for s in [a]), [], [], None)  # any iterable
    assert r == [a]


def test_select_errors_like_stdlib(pair):
    a, _ = pair
    with pytest.raises(ValueError):
        gselect.select([a], [], [], -1)
    with pytest.raises(TypeError):
        gselect.select([a], [], [], "1")
    with pytest.raises((ValueError, OSError)):
        gselect.select([-1], [], [], 0)


def test_two_greenthreads_select_the_same_fd(pair):
    a, b = pair
    results = []
    gts = [
        nettools.spawn(lambda: results.append(gselect.select([a], [], [])[0])) for _ in range(2)
    ]
    settle()  # both wait in select (the second polls: one fd has one waiter slot)
    assert results == []
    b.send(b"z")
    with nettools.Timeout(10):
        for gt in gts:
            gt.wait()
    assert results == [[a], [a]]


def test_select_on_a_pipe():
    r, w = os.pipe()
    try:
        nettools.spawn_after(0.05, os.write, w, b"p")
        assert gselect.select([r], [], [], 5)[0] == [r]
        assert os.read(r, 1) == b"p"
    finally:
        os.close(r)
        os.close(w)


def test_hub_forgets_fds_it_only_watched_for_select(pair):
    a, b = pair
    _send_later(b, 0.02)
    gselect.select([a], [], [], 5)
    assert a.fileno() not in nettools.get_hub().fds


# ------------------------------------------------------------- poll / epoll


def test_poll_object(pair):
    a, b = pair
    p = gselect.poll()
    p.register(a, gselect.POLLIN)
    assert p.poll(0) == []
    start = time.monotonic()
    assert p.poll(50) == []
    assert time.monotonic() - start >= 0.045
    _send_later(b)
    assert p.poll() == [(a.fileno(), gselect.POLLIN)]
    p.modify(a, gselect.POLLOUT)
    assert p.poll(1000) == [(a.fileno(), gselect.POLLOUT)]
    p.unregister(a)
    with pytest.raises(KeyError):
        p.unregister(a)


def test_concurrent_poll_calls_are_refused(pair):
    a, _ = pair
    p = gselect.poll()
    p.register(a, gselect.POLLIN)
    first = nettools.spawn(p.poll, 200)
    nettools.sleep(0.01)
    with pytest.raises(RuntimeError):
        p.poll(10)
    assert first.wait() == []


def test_epoll_object(pair):
    a, b = pair
    with gselect.epoll() as ep:
        ep.register(a.fileno(), gselect.EPOLLIN)
        assert ep.poll(0) == []
        start = time.monotonic()
        assert ep.poll(0.05) == []
        assert time.monotonic() - start >= 0.045
        ticks: list = []
        ticker(ticks)
        _send_later(b)
        assert ep.poll(5) == [(a.fileno(), gselect.EPOLLIN)]
        assert len(ticks) == 5
        assert ep.poll(-1, 1) == [(a.fileno(), gselect.EPOLLIN)]  # level-triggered
        again = gselect.epoll.fromfd(os.dup(ep.fileno()))
        again.close()
        assert again.closed
    assert ep.closed


# ---------------------------------------------------------------- selectors


@pytest.mark.parametrize("cls", SELECTORS, ids=lambda c: c.__name__)
def test_selector_waits_and_times_out(cls, pair):
    a, b = pair
    with cls() as sel:
        assert isinstance(sel, stdlib_selectors.BaseSelector)
        key = sel.register(a, gselectors.EVENT_READ, "payload")
        assert isinstance(key, stdlib_selectors.SelectorKey)
        start = time.monotonic()
        assert sel.select(0.1) == []
        assert time.monotonic() - start >= 0.09
        ticks: list = []
        ticker(ticks)
        _send_later(b)
        ready = sel.select(5)
        assert [(k.data, ev) for k, ev in ready] == [("payload", gselectors.EVENT_READ)]
        assert len(ticks) == 5


def _always_ready_loop(wait) -> bool:
    """Loop on ``wait()`` (a selector call whose answer is always "writable");
    True if a greenthread spawned before the loop got to run during it."""
    ran = []
    nettools.spawn(ran.append, 1)
    for _ in range(1000):
        if ran:
            return True
        assert wait()
    return False


@pytest.mark.parametrize("kind", ["select", "poll", "epoll", *(c.__name__ for c in SELECTORS)])
def test_a_call_on_an_always_ready_selector_gives_the_hub_a_turn(kind, pair):
    # CPython's test_ftplib and test_poplib hang on this: an asyncore loop whose
    # TLS handler is always writable starved every other greenthread.
    a, _ = pair
    if kind == "select":
        assert _always_ready_loop(lambda: gselect.select([], [a], [], 5)[1])
    elif kind == "poll":
        poller = gselect.poll()
        poller.register(a, gselect.POLLOUT)
        assert _always_ready_loop(lambda: poller.poll(5000))
    elif kind == "epoll":
        with gselect.epoll() as ep:
            ep.register(a.fileno(), gselect.EPOLLOUT)
            assert _always_ready_loop(lambda: ep.poll(5))
    else:
        cls = next(c for c in SELECTORS if c.__name__ == kind)
        with cls() as sel:
            sel.register(a, stdlib_selectors.EVENT_WRITE)
            assert _always_ready_loop(lambda: sel.select(5))


def test_a_timeout_fires_in_a_greenthread_looping_on_a_ready_selector(pair):
    a, _ = pair
    with pytest.raises(nettools.Timeout):  # were the timer never run: a few seconds, no raise
        with nettools.Timeout(0.05):
            for _ in range(10**6):
                gselect.select([], [a], [], 5)


def test_default_selector_is_green():
    assert issubclass(gselectors.DefaultSelector, stdlib_selectors.DefaultSelector)
    assert gselectors.EVENT_WRITE == stdlib_selectors.EVENT_WRITE


# ---------------------------------------------------------- monkey-patched


def test_monkey_patched_select_and_selectors():
    run_isolated(
        """
        import socket
        a, b = socket.socketpair()     # made before patching: plain sockets
        import nettools
        nettools.monkey_patch(select=True)
        import select, selectors, time
        assert nettools.is_monkey_patched("select") and nettools.is_monkey_patched("selectors")
        assert not nettools.is_monkey_patched("socket")
        ticks = []
        def tick():
            for _ in range(5):
                ticks.append(1)
                nettools.sleep(0.01)
        nettools.spawn(tick)
        nettools.spawn_after(0.1, b.send, b"x")
        assert select.select([a], [], [], 5)[0] == [a]
        assert len(ticks) == 5
        a.recv(1)
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ)
        start = time.monotonic()
        assert sel.select(0.1) == []
        assert time.monotonic() - start >= 0.09
        nettools.spawn_after(0.05, b.send, b"y")
        assert len(sel.select(5)) == 1
        p = select.poll()
        p.register(a, select.POLLIN)
        assert p.poll(1000)
        # a hub made after patching (here: in a new OS thread) still works
        import threading
        from nettools.patcher import original
        out = []
        def in_thread():
            nettools.sleep(0.01)
            out.append(select.select([a], [], [], 1)[0] == [a])
        t = original("threading").Thread(target=in_thread)
        t.start()
        t.join(10)
        assert out == [True], out
        print("OK")
        """
    )


def test_monkey_patched_select_with_green_sockets():
    run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        import select, selectors, socket
        a, b = socket.socketpair()
        assert type(a).__module__ == "nettools.green.socket"
        nettools.spawn_after(0.05, b.sendall, b"x")
        assert select.select([a], [], [], 5)[0] == [a]
        assert a.recv(1) == b"x"
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ)
        nettools.spawn_after(0.05, b.sendall, b"y")
        assert len(sel.select(5)) == 1
        assert a.recv(1) == b"y"
        print("OK")
        """
    )
