"""A rule's targets: which one a new connection tries first, and which are down.

``round-robin`` starts each connection at the next living target; ``first``
always starts at the first living one in the order given (the others stand by,
as a failover).  A connection tries the living targets in that order, then the
ones marked down as a last resort, so a client is turned away only when no
target at all answers.

Passive health: a target that refuses or times out is marked down for
``fail_timeout`` seconds and skipped meanwhile.  Active health (with
``health_check``): a greenthread connects to every target each interval, marks
a target down when that fails and up again when it succeeds.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Sequence
from typing import Any

from ...green import socket
from ...green.socket import connect_within
from ...kernel.greenthread import GreenThread, kill, sleep, spawn
from .errors import describe
from .rules import Target

__all__ = ["TargetPool", "Unreachable"]

log = logging.getLogger("nettools.forward")


class Unreachable(OSError):
    """No target answered; the message says why the last one failed."""


class TargetPool:
    """The targets of one rule and their health."""

    def __init__(
        self,
        targets: Sequence[Target],
        balance: str = "round-robin",
        fail_timeout: float = 10.0,
        health_check: float | None = None,
        name: str = "",
    ) -> None:
        self.targets = list(targets)
        self.balance = balance
        self.fail_timeout = fail_timeout
        self.health_check = health_check
        self.name = name
        #: Target -> monotonic time until which it counts as down.
        self.down_until: dict[Target, float] = {}
        self._next = 0
        self._checker: GreenThread | None = None

    def is_down(self, target: Target, now: float | None = None) -> bool:
        until = self.down_until.get(target)
        return until is not None and until > (time.monotonic() if now is None else now)

    def order(self) -> list[Target]:
        """The targets a new connection tries, in order: living ones first."""
        targets = self.targets
        if len(targets) == 1:
            return targets[:]  # alive or down, it is the one to try
        if self.balance == "round-robin":
            start = self._next % len(targets)
            self._next += 1
            targets = targets[start:] + targets[:start]
        now = time.monotonic()
        alive = [t for t in targets if not self.is_down(t, now)]
        return alive + [t for t in targets if self.is_down(t, now)]

    def failed(self, target: Target, why: str) -> None:
        """``target`` refused or timed out: skip it for ``fail_timeout``."""
        if len(self.targets) > 1 and not self.is_down(target):
            log.warning("%s: target %s is down (%s); skipping it for %gs",
                        self.name, target.name, why, self.fail_timeout)
        self.down_until[target] = time.monotonic() + self.fail_timeout

    def succeeded(self, target: Target) -> None:
        if self.down_until.pop(target, None) is not None and len(self.targets) > 1:
            log.info("%s: target %s is up again", self.name, target.name)

    # ------------------------------------------------------------- connect

    def connect(self, timeout: float | None, kind: int = socket.SOCK_STREAM) -> tuple[Any, Target]:
        """A socket connected to the first target that answers, and that target;
        ``Unreachable`` if none does within ``timeout`` seconds in all."""
        deadline = None if timeout is None else time.monotonic() + timeout
        error: BaseException | None = None
        for target in self.order():
            try:
                sock = connect_target(target, deadline, kind)
            except TimeoutError as exc:
                self.failed(target, "timed out")
                error = exc
                if deadline is not None and time.monotonic() >= deadline:
                    break
                continue
            except OSError as exc:
                if exc.errno in _OUR_PROBLEMS:
                    raise  # out of fds or memory: no target's fault
                self.failed(target, describe(exc))
                error = exc
                continue
            self.succeeded(target)
            return sock, target
        why = describe(error) if error is not None else "no address"
        names = ", ".join(t.name for t in self.targets)
        raise Unreachable(f"cannot connect to {names}: {why}")

    # -------------------------------------------------------- active checks

    def start(self) -> None:
        """Start the active checks, if asked for."""
        if self.health_check and self._checker is None:
            self._checker = spawn(self._check_forever)

    def stop(self) -> None:
        if self._checker is not None:
            kill(self._checker)
            self._checker = None

    def _check_forever(self) -> None:
        interval = self.health_check or 1.0
        while True:
            for target in list(self.targets):
                try:
                    deadline = time.monotonic() + min(interval, 5.0)
                    connect_target(target, deadline, socket.SOCK_STREAM).close()
                except OSError as exc:
                    self.failed(target, f"health check: {describe(exc)}")
                    self.down_until[target] = time.monotonic() + interval + self.fail_timeout
                else:
                    self.succeeded(target)
            sleep(interval)


#: connect() failures that are this process's, not the target's.
_OUR_PROBLEMS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


def connect_target(target: Target, deadline: float | None, kind: int) -> Any:
    """A socket connected to ``target`` (each of its addresses in turn) before
    ``deadline``; the last error if none answers."""
    error: OSError | None = None
    for family, sockaddr in target.addresses:
        sock = socket.socket(family, kind)
        try:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            connect_within(sock, sockaddr, left)
        except OSError as exc:
            sock.close()
            error = exc
            if isinstance(exc, TimeoutError):
                break  # the time is used up; other addresses would time out at once
            continue
        if sock.gettimeout() is not None:  # a program's socket.setdefaulttimeout
            sock.settimeout(None)
        return sock
    raise error if error is not None else OSError("no address")
