"""A proper place in systemd: socket activation, readiness and the watchdog.

* **Socket activation** (``sd_listen_fds``): when ``LISTEN_PID`` is this process
  and ``LISTEN_FDS`` is N, fds 3..3+N-1 are listening sockets systemd opened
  for us, named by ``LISTEN_FDNAMES`` (``FileDescriptorName=`` in the unit; an
  unnamed one is ``unknown``).  A service takes one by name (the address
  ``systemd:NAME``; ``systemd:`` takes the next one in order) or by the
  address it is bound to (``--listen 127.0.0.1:7000`` finds a socket systemd
  bound there), and binds its own otherwise.  The variables are removed from
  the environment once read, so no child process mistakes them for its own.
* **Notifications** (``sd_notify``): ``READY=1`` once every listener is
  announced, ``STOPPING=1`` when a stop begins, ``STATUS=`` lines for
  ``systemctl status``; datagrams to ``NOTIFY_SOCKET`` (a path, or ``@name``
  in the abstract namespace), for ``Type=notify`` units.
* **Watchdog**: with ``WATCHDOG_USEC`` (and ``WATCHDOG_PID`` unset or ours),
  ``WATCHDOG=1`` every half of it from a timer on the hub -- so a hub that is
  stuck stops pinging, and systemd restarts the service.

The protocol is a few lines of text over a unix datagram socket, written here
rather than through libsystemd's binding (a C extension to build).  Nothing
here does anything outside systemd: without the variables every call is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket as _stdsocket
from dataclasses import dataclass
from typing import Any

from ...green import socket
from ...kernel.hub import Timer, get_hub
from ...net import Address, format_address

__all__ = [
    "SystemdAddress",
    "SD_LISTEN_FDS_START",
    "inherited",
    "claim",
    "claim_matching",
    "passed_for",
    "is_passed",
    "unclaimed",
    "describe",
    "notify",
    "Watchdog",
    "watchdog_interval",
]

log = logging.getLogger("nettools.systemd")

SD_LISTEN_FDS_START = 3


@dataclass(frozen=True)
class SystemdAddress(Address):
    """``systemd:NAME``: the listening socket systemd passed under ``NAME``
    (``systemd:`` alone: the next one not taken yet)."""

    name: str = ""

    @classmethod
    def parse(cls, text: str) -> SystemdAddress:
        return cls(None, None, None, text.strip()[len("systemd:") :])

    def __str__(self) -> str:
        return f"systemd:{self.name}"


@dataclass
class _Passed:
    fd: int
    name: str
    taken: bool = False


_passed: list[_Passed] | None = None


def inherited() -> list[_Passed]:
    """The sockets systemd passed to this process (read once; the variables are
    then removed from the environment)."""
    global _passed
    if _passed is None:
        _passed = []
        pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
        names = os.environ.get("LISTEN_FDNAMES", "")
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(var, None)
        if pid and count and pid.isdigit() and int(pid) == os.getpid() and count.isdigit():
            labels = names.split(":") if names else []
            for i in range(int(count)):
                fd = SD_LISTEN_FDS_START + i
                os.set_inheritable(fd, False)  # as sd_listen_fds does: not for our children
                label = labels[i] if i < len(labels) and labels[i] else "unknown"
                _passed.append(_Passed(fd, label))
    return _passed


def _take(passed: _Passed) -> Any:
    passed.taken = True
    return socket.socket(fileno=passed.fd)  # green: the fd goes non-blocking, waits go to the hub


def claim(name: str) -> Any:
    """The passed socket named ``name`` (``""``: the next one not taken), as a
    green socket; ``LookupError`` saying what was passed if there is none."""
    for passed in inherited():
        if not passed.taken and (passed.name == name or not name):
            return _take(passed)
    names = ", ".join(p.name for p in inherited()) or "none"
    wanted = f"named {name!r}" if name else "left"
    raise LookupError(f"no socket {wanted} passed by systemd (LISTEN_FDNAMES: {names})")


def passed_for(addr: Address, kind: int = _stdsocket.SOCK_STREAM) -> _Passed | None:
    """The passed socket (not taken yet) bound to ``addr``: the same host and
    port, or the same unix path; None if there is none."""
    for passed in inherited():
        if passed.taken:
            continue
        try:
            probe = _stdsocket.socket(fileno=os.dup(passed.fd))
        except OSError:
            continue
        with probe:
            if probe.type != kind:
                continue
            bound = probe.getsockname()
        if _same(bound, addr):
            return passed
    return None


def claim_matching(addr: Address, kind: int = _stdsocket.SOCK_STREAM) -> Any:
    """The passed socket bound to ``addr`` as a green socket; None if there is none."""
    passed = passed_for(addr, kind)
    return None if passed is None else _take(passed)


def is_passed(sock: Any) -> bool:
    """Whether ``sock`` came from systemd (then systemd, not we, owns its file)."""
    try:
        fd = sock.fileno()
    except (AttributeError, OSError):
        return False
    return any(p.taken and p.fd == fd for p in inherited())


def _same(bound: Any, addr: Address) -> bool:
    if addr.path is not None:
        return bound == addr.path
    if not isinstance(bound, tuple) or addr.port in (None, 0) or bound[1] != addr.port:
        return False
    host = addr.host or ""
    return bound[0] == host or (host in ("", "0.0.0.0", "::") and bound[0] in ("0.0.0.0", "::"))


def unclaimed() -> list[str]:
    """The names of passed sockets nothing has taken (worth a warning)."""
    return [p.name for p in inherited() if not p.taken]


def notify(*states: str) -> bool:
    """Send ``states`` (``READY=1``, ``STATUS=...``) to systemd; False when not
    run by systemd (no ``NOTIFY_SOCKET``) or the message could not be sent."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path or not states:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    sock = _stdsocket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_DGRAM | _stdsocket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)  # from the hub: never wait
        sock.sendto("\n".join(states).encode(), path)
        return True
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", path, exc)
        return False
    finally:
        sock.close()


def watchdog_interval() -> float | None:
    """Seconds between two ``WATCHDOG=1`` (half of ``WATCHDOG_USEC``), or None
    when systemd watches no one here."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


class Watchdog:
    """``WATCHDOG=1`` every ``watchdog_interval()`` from a timer on this thread's
    hub (nothing without ``WATCHDOG_USEC``)."""

    def __init__(self) -> None:
        self.interval = watchdog_interval()
        self._timer: Timer | None = None

    def start(self) -> Watchdog:
        if self.interval is not None and self._timer is None:
            self._ping()
        return self

    def _ping(self) -> None:
        notify("WATCHDOG=1")
        self._timer = get_hub().schedule(self.interval, self._ping)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def describe(listeners: list[Any]) -> str:
    """``listening on A, B`` for a STATUS= line."""
    names = []
    for listener in listeners:
        with contextlib.suppress(OSError):
            names.append(listener if isinstance(listener, str)
                         else format_address(listener.getsockname()))  # fmt: skip
    return "listening on " + ", ".join(names)
