"""libcurl's multi-socket interface driven by the nettools hub.

One ``CurlLoop`` per hub (so per OS thread) owns a ``pycurl.CurlMulti``; every
greenthread of that thread runs its transfers through it.  libcurl does the
HTTP; this module only tells libcurl when its sockets are ready and when its
timer is due, and wakes the greenthread waiting on each transfer when it ends.

How readiness reaches libcurl: libcurl says which of its sockets it wants
watched, for which directions, through ``M_SOCKETFUNCTION``, and it expects
*level-triggered* readiness (a socket it did not drain is reported again).
The hub's own registrations are edge-triggered.  So the loop keeps its own
level-triggered epoll instance for libcurl's sockets and puts that single
epoll fd into the hub with ``Hub.watch``: the hub wakes the loop when any of
libcurl's sockets may be ready, and the loop then polls its epoll (without
blocking) and hands each ready socket to ``socket_action``.  The token given
to ``watch`` is not a greenlet but an object whose ``switch`` runs the loop's
handler inside the hub -- no greenthread switch per I/O event and no change to
the hub's hot paths.  The loop watches only while transfers are running, so
an idle client never keeps a thread from being reported as deadlocked.

Sockets: libcurl opens them through the easy handle's ``OPENSOCKETFUNCTION``
(where the client vets the address) and closes them itself.  Before closing a
socket it watched it says ``POLL_REMOVE``, and the kernel drops a closed fd
from an epoll anyway; when a number first shows up the hub is told to forget
whatever it knew under it (``notify_opened``).  The hub never registers
libcurl's sockets, so a number libcurl closed and someone else reuses is new
to the hub.  A socket libcurl stops watching after reading (a connection back
in its cache) stays registered, asleep: the next request wakes it with one
``modify`` -- which fails if the number now names another file, which then is
registered -- and an event on a sleeping socket (its server closed it) just
unregisters it.  (A ``CLOSESOCKETFUNCTION`` cannot serve: libcurl calls the one of
the handle that opened a connection, often idle by then, and pycurl runs a
handle's callbacks only while that handle is inside a multi call -- otherwise
it skips the callback and the fd would never be closed.)

``M_TIMERFUNCTION`` becomes one hub timer (kept when due no later than libcurl
asks, since an early timeout action is harmless; "now" is a hub callback);
``info_read`` after each round finds finished transfers, whose greenthreads are
switched to right away (the hub is outside every libcurl call by then).  A
greenthread that leaves its wait by an exception (``Timeout``, kill) removes its
handle from the multi.
"""

from __future__ import annotations

import weakref
from time import monotonic
from typing import Any

import pycurl
from greenlet import getcurrent

from ...kernel.fdwait import READ
from ...kernel.hub import Hub, current_hub, get_hub
from ...patcher import original

select = original("select")  # the real epoll: polled only with a zero timeout, in the hub

__all__ = ["CurlLoop", "curl_loop", "existing_loop", "Transfer"]

_IN = select.EPOLLIN | select.EPOLLPRI | select.EPOLLRDHUP
_MASKS = {
    pycurl.POLL_IN: _IN,
    pycurl.POLL_OUT: select.EPOLLOUT,
    pycurl.POLL_INOUT: _IN | select.EPOLLOUT,
}
_READABLE = _IN | select.EPOLLHUP | select.EPOLLERR
_WRITABLE = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
#: In ``_masks``: a socket registered for input that libcurl no longer watches.
_ASLEEP = -1
#: Rounds of "poll libcurl's epoll, act" per wake-up before yielding to the hub.
_ROUNDS = 8
#: Seconds of a batch's work after which the transfers it added are started.
START_EVERY = 0.0002
#: Idle connections libcurl keeps open for reuse (all hosts, all clients of a thread).
MAX_IDLE_CONNECTIONS = 1024


class Transfer:
    """What a greenthread waits for: one easy handle's run through the multi.

    ``result`` is ``(code, message)`` once libcurl is done (code 0: success).
    """

    __slots__ = ("easy", "waiter", "result")

    def __init__(self, easy: pycurl.Curl) -> None:
        self.easy = easy
        self.waiter: Any = None
        self.result: tuple[int, str] | None = None


class _Wake:
    """A ``Hub.watch`` token: the hub "switches" to it by calling the loop."""

    __slots__ = ("switch",)

    def __init__(self, handler: Any) -> None:
        self.switch = handler

    def throw(self, *_exc: Any) -> None:  # our epoll fd is never closed under us
        pass


class CurlLoop:
    """The hub's CurlMulti and the glue between the two (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.multi = self._new_multi()
        #: Clients that used this loop and are not closed yet.
        self.users: weakref.WeakSet[Any] = weakref.WeakSet()
        self._ep = select.epoll()
        self._epfd = self._ep.fileno()
        self._masks: dict[int, int] = {}  # fd -> epoll mask libcurl asked for
        self._timer: Any = None  # the hub timer standing for libcurl's, if later than now
        self._kicked = False  # a "time is up now" callback is queued on the hub
        self._token = _Wake(self._on_ready)
        self._watching = False
        #: Transfers in the multi, by easy handle.
        self.running: dict[pycurl.Curl, Transfer] = {}
        #: Idle transfers (easy handles and their state) for reuse.
        self.handles: list[Any] = []

    def _new_multi(self) -> pycurl.CurlMulti:
        m = pycurl.CurlMulti()
        m.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        m.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        m.setopt(pycurl.M_MAXCONNECTS, MAX_IDLE_CONNECTIONS)
        return m

    def release(self, user: Any) -> None:
        """``user`` (a client) is closed.  Once no open client used this loop and
        no transfer runs, libcurl's idle connections are closed now rather than
        left to time out; a fresh multi serves whatever comes next."""
        self.users.discard(user)
        if self.users or self.running:
            return
        old, self.multi = self.multi, self._new_multi()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        old.close()  # closes its connections (POLL_REMOVE for watched ones)
        self._masks.clear()

    # ------------------------------------------------------------ greenthreads

    def perform(self, transfer: Transfer) -> tuple[int, str]:
        """Run ``transfer`` to its end, parked on the hub; returns (code, message)."""
        easy = transfer.easy
        transfer.result = None
        transfer.waiter = getcurrent()
        self.multi.add_handle(easy)  # libcurl asks for a 0 ms timer: the hub runs it
        self.running[easy] = transfer
        self._arm()
        try:
            self.hub.switch()
        except BaseException:
            self.remove(transfer)
            raise
        finally:
            transfer.waiter = None
        result = transfer.result
        if result is None:  # woken by something other than this loop
            self.remove(transfer)
            return pycurl.E_ABORTED_BY_CALLBACK, "transfer interrupted"
        return result

    def remove(self, transfer: Transfer) -> None:
        """Take an unfinished transfer out of the multi (its connection is closed)."""
        easy = transfer.easy
        if self.running.pop(easy, None) is not None:
            self.multi.remove_handle(easy)
            self._arm()

    # --------------------------------------------------------- libcurl -> hub

    def _on_socket(self, what: int, fd: int, _multi: Any, _data: Any) -> None:
        masks = self._masks
        if what == pycurl.POLL_REMOVE:
            old = masks.get(fd)
            if old == _IN:
                # A connection going back to libcurl's cache after its answer: it stays
                # registered, asleep, so that its next request costs one epoll call
                # (a modify), not two (unregister, register).
                masks[fd] = _ASLEEP
            elif old is not None and old != _ASLEEP:
                del masks[fd]
                try:
                    self._ep.unregister(fd)
                except OSError:
                    pass
            return
        mask = _MASKS.get(what, 0)
        old = masks.get(fd)
        if old == mask:
            return
        ep = self._ep
        if old == _ASLEEP:
            try:
                ep.modify(fd, mask)
                masks[fd] = mask
                return
            except FileNotFoundError:
                old = None  # closed meanwhile (the kernel dropped it), the number reused
        if old is None:
            # A number libcurl now owns: whatever the hub knew under it is stale.
            self.hub.notify_opened(fd)
            try:
                ep.register(fd, mask)
            except FileExistsError:  # left registered by a socket closed unseen
                ep.modify(fd, mask)
        else:
            try:
                ep.modify(fd, mask)
            except FileNotFoundError:  # closed unseen and the number reused
                ep.register(fd, mask)
        masks[fd] = mask

    def _on_timer(self, ms: int) -> None:
        # libcurl has one timer, which each call replaces.  A timeout action that
        # comes early is harmless (libcurl finds nothing due and asks again), so a
        # pending timer due no later than asked for is kept, and "now" is a hub
        # callback: most of the two or three calls per transfer touch no heap.
        timer = self._timer
        if ms == 0:
            if not self._kicked:
                self._kicked = True
                self.hub.run_callback(self._kick)
            return
        if ms > 0:
            if timer is not None and timer.deadline <= monotonic() + ms / 1000.0:
                return
            self._timer = self.hub.schedule(ms / 1000.0, self._on_timeout)
        else:
            self._timer = None
        if timer is not None:
            timer.cancel()

    # ------------------------------------------------------------ hub -> libcurl

    def _kick(self) -> None:
        self._kicked = False
        self._timeout_action()

    def _on_timeout(self) -> None:
        self._timer = None
        self._timeout_action()

    def _timeout_action(self) -> None:
        try:
            self.multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        except pycurl.error:
            pass
        # Also catches readiness whose hub edge came while nobody was watching.
        self._service()

    def _on_ready(self) -> None:
        if self._watching:
            self._watching = False
            self.hub.unwatch(self._epfd, READ, self._token)
        self._service()

    def _service(self) -> None:
        poll = self._ep.poll
        action = self.multi.socket_action
        for _ in range(_ROUNDS):
            events = poll(0)
            if not events:
                break
            for fd, ev in events:
                if self._masks.get(fd, _ASLEEP) == _ASLEEP:
                    # A cached connection closed by its server, or a stale number:
                    # libcurl finds out when it next uses it; stop hearing of it.
                    self._masks.pop(fd, None)
                    try:
                        self._ep.unregister(fd)
                    except OSError:
                        pass
                    continue
                bits = 0
                if ev & _READABLE:
                    bits |= pycurl.CSELECT_IN
                if ev & _WRITABLE:
                    bits |= pycurl.CSELECT_OUT
                if ev & select.EPOLLERR:
                    bits |= pycurl.CSELECT_ERR
                try:
                    action(fd, bits)
                except pycurl.error:
                    pass
        else:
            # Still busy after several rounds: let the hub's other work run first.
            self.hub.run_callback(self._service)
        self._finish()
        self._arm()

    def _finish(self) -> None:
        multi = self.multi
        running = self.running
        done: list[Transfer] = []
        while True:
            queued, ok, failed = multi.info_read()
            for easy in ok:
                t = running.pop(easy, None)
                if t is not None:
                    multi.remove_handle(easy)
                    t.result = (0, "")
                    done.append(t)
            for easy, code, message in failed:
                t = running.pop(easy, None)
                if t is not None:
                    multi.remove_handle(easy)
                    t.result = (code, message)
                    done.append(t)
            if not queued:
                break
        # Outside every libcurl call now: the woken may start new transfers.  Those
        # are started every START_EVERY seconds of the batch's work, not only after
        # it: a batch of answers that came together would otherwise send all its
        # follow-up requests together, after all of its work, and the requests
        # would go on travelling in waves, each a batch's work late.
        started = monotonic()
        for t in done:
            g = t.waiter
            if g is not None:
                t.waiter = None
                g.switch()
                if self._kicked and monotonic() - started >= START_EVERY:
                    try:  # a "time is up now" is queued: act on it now, and again then
                        multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
                    except pycurl.error:
                        pass
                    started = monotonic()

    def _arm(self) -> None:
        if self.running:
            if not self._watching:
                self._watching = True
                self.hub.watch(self._epfd, READ, self._token)
        elif self._watching:
            self._watching = False
            self.hub.unwatch(self._epfd, READ, self._token)

    def wake(self, transfer: Transfer, exc: BaseException) -> None:
        """Throw ``exc`` into the greenthread waiting on ``transfer`` (from the hub)."""
        g = transfer.waiter
        if g is not None and transfer.easy in self.running:
            transfer.waiter = None
            g.throw(exc)


_loops: weakref.WeakKeyDictionary[Hub, CurlLoop] = weakref.WeakKeyDictionary()


def existing_loop() -> CurlLoop | None:
    """This thread's ``CurlLoop`` if it has one (never makes one)."""
    hub = current_hub()
    return None if hub is None else _loops.get(hub)


def curl_loop() -> CurlLoop:
    """This thread's ``CurlLoop`` (made on first use)."""
    hub = get_hub()
    loop = _loops.get(hub)
    if loop is None:
        loop = _loops[hub] = CurlLoop(hub)
    return loop
