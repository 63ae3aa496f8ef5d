"""The hub's pollers: epoll and the poll(2) fallback behind the same few methods."""

from __future__ import annotations

import os
import threading

import pytest

from nettools.kernel.fdwait import FdState
from nettools.kernel.poller import EpollPoller, PollPoller


def _fds(poller, fds, *numbers) -> None:
    """Register ``numbers`` as the hub does: a record first, then the poller."""
    for fd in numbers:
        fds[fd] = FdState(fd)
        poller.register(fd)


@pytest.fixture(params=["epoll", "poll"])
def poller_and_fds(request):
    fds: dict = {}
    poller = EpollPoller() if request.param == "epoll" else PollPoller(fds)
    yield poller, fds
    poller.close()


@pytest.fixture
def os_pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_a_readable_fd_is_reported_with_the_in_mask(poller_and_fds, os_pipe):
    poller, fds = poller_and_fds
    r, w = os_pipe
    _fds(poller, fds, r)
    fds[r].reader = object()  # someone waits to read
    os.write(w, b"x")
    events = dict(poller.poll(5))
    assert events[r] & poller.IN
    assert not events[r] & poller.HUP


def test_a_hang_up_is_reported_with_the_hup_mask(poller_and_fds, os_pipe):
    poller, fds = poller_and_fds
    r, w = os_pipe
    _fds(poller, fds, r)
    fds[r].reader = object()
    os.close(w)
    events = dict(poller.poll(5))
    assert events[r] & poller.IN and events[r] & poller.HUP


def test_wake_from_another_thread_ends_a_poll_until_cleared(poller_and_fds):
    poller, _ = poller_and_fds
    t = threading.Thread(target=poller.wake)
    t.start()
    t.join(5)
    assert [fd for fd, _ in poller.poll(5)] == [poller.wake_fd]
    poller.clear_wake()
    assert poller.poll(0) == []


def test_a_wakeup_fd_ends_a_poll(poller_and_fds, os_pipe):
    poller, _ = poller_and_fds
    r, w = os_pipe
    poller.add_wakeup_fd(r)
    os.write(w, b"\0")
    assert [fd for fd, _ in poller.poll(5)] == [r]


def test_unregister_is_harmless_for_unknown_and_closed_fds(poller_and_fds, os_pipe):
    poller, fds = poller_and_fds
    r, w = os_pipe
    poller.unregister(w)  # never registered
    _fds(poller, fds, r)
    del fds[r]
    os.close(r)
    poller.unregister(r)  # already closed


def test_close_releases_the_wake_up_channel():
    for poller in (EpollPoller(), PollPoller({})):
        wake_fd = poller.wake_fd
        poller.close()
        with pytest.raises(OSError):
            os.fstat(wake_fd)


def test_the_poll_poller_polls_only_the_directions_waited_for(os_pipe):
    # Level-triggered, a writable pipe polled for writing would end every poll.
    r, w = os_pipe
    fds: dict = {}
    poller = PollPoller(fds)
    try:
        _fds(poller, fds, w)
        assert poller.poll(0) == []
        fds[w].writer = object()
        assert [(fd, bool(ev & poller.OUT)) for fd, ev in poller.poll(0)] == [(w, True)]
        fds[w].writer = None
        assert poller.poll(0) == []
    finally:
        poller.close()


@pytest.fixture
def epoll_and_a_file_closed_behind_its_back():
    """An ``EpollPoller`` with pipe read end ``r`` registered and then closed behind
    its back, while a duplicate keeps the file open: ``(poller, r, w, spare)``."""
    r, w = os.pipe()
    spare = os.dup(r)
    poller = EpollPoller()
    poller.register(r)
    os.close(r)
    yield poller, r, w, spare
    poller.close()
    for fd in (r, w, spare):
        try:
            os.close(fd)
        except OSError:
            pass


def test_epoll_takes_over_a_registration_of_the_same_file(epoll_and_a_file_closed_behind_its_back):
    # FileExistsError: the number comes back as another duplicate of a file
    # whose registration outlived the hub's record.
    poller, r, w, spare = epoll_and_a_file_closed_behind_its_back
    os.dup2(spare, r)  # the number comes back, naming the same file
    poller.register(r)
    os.write(w, b"x")
    assert [fd for fd, _ in poller.poll(5)] == [r]


def test_epoll_reports_a_stale_registration_once(epoll_and_a_file_closed_behind_its_back):
    # The stale registration stays under its old number and cannot be removed.
    poller, r, w, _ = epoll_and_a_file_closed_behind_its_back
    os.write(w, b"x")  # the stale file is readable, and stays so
    assert [fd for fd, _ in poller.poll(5)] == [r]
    assert poller.poll(0) == []  # edge-triggered: no busy loop
    assert poller.poll(0) == []
