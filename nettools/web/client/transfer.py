"""One request/response exchange on a pooled libcurl easy handle.

The handle's callbacks collect the body (cut at the cap, a redirect's own body
dropped) and the header lines; ``opensocket`` vets each address as libcurl is
about to connect to it; a hub timer fails an exchange that stays quiet longer
than the read timeout, and another one ends it when the request's time
budget (``TimeBudget``: the whole-request deadline, shared by its redirect hops)
runs out.  ``CurlLoop`` (``curlloop.py``) runs the exchange.
"""

from __future__ import annotations

import _socket
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pycurl

from ...kernel.hub import get_hub
from .curlloop import Transfer
from .errors import FetchError, seconds

__all__ = ["Exchange", "TimeBudget", "take_exchange", "REDIRECT_STATUSES", "REDIRECT_BODY_LIMIT"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: A redirect's own body is read (and dropped) up to this much to keep the connection.
REDIRECT_BODY_LIMIT = 64 * 1024


class _ReadTimedOut(Exception):
    """Thrown into a waiting greenthread whose transfer went quiet too long."""


class _OutOfTime(Exception):
    """Thrown into a waiting greenthread whose request used up its time budget."""


class TimeBudget:
    """The time one request may spend in its exchanges, all hops together:
    ``seconds`` in all (None: no limit).  Waiting for a place at a host (the
    client's per-host gate) is queueing, not exchanging, and costs nothing."""

    __slots__ = ("seconds", "spent")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.spent = 0.0

    def left(self) -> float | None:
        return None if self.seconds is None else max(self.seconds - self.spent, 0.0)


class Exchange(Transfer):
    """A pooled easy handle and the state of the exchange it is running.

    ``take_exchange`` hands one out, configured; ``set_request`` and
    ``prepare`` set up one hop, ``run`` performs it, and ``put_back`` returns
    the handle to its loop's free list.  The callbacks (``write``, the header
    lines, ``opensocket``) run inside libcurl calls, in the hub: they never
    wait.  ``opensocket`` is where ``allow_address`` sees the exact address
    libcurl is about to connect to, for the first request and every redirect hop.
    """

    __slots__ = (
        "loop", "config", "dirty", "chunks", "size", "cap", "truncated", "discarding",
        "follow", "lines", "parsed", "lines_seen", "headers", "allow", "refused", "last",
        "started", "read_timer", "deadline",
    )  # fmt: skip

    def __init__(self, loop: Any) -> None:
        super().__init__(pycurl.Curl())
        self.loop = loop
        self.config: Any = None
        self.dirty = False
        self.chunks: list[bytes] = []
        self.size = 0
        self.cap = 0
        self.truncated = False
        self.discarding = False
        self.follow = False
        self.lines: list[bytes] = []
        self.parsed = -1  # len(lines) when last parsed
        self.lines_seen = 0  # len(lines) at the last read-timeout check
        self.headers: dict[str, tuple[str, str]] = {}
        self.allow: Callable[[str], bool] | None = None
        self.refused: list[str] = []
        self.last = 0.0
        self.started = 0.0
        self.read_timer: Any = None  # the timer of _check_time
        self.deadline: float | None = None  # when the request's time budget runs out

    def prepare(self, cap: int, follow: bool, allow: Callable[[str], bool] | None) -> None:
        """A new hop: keep at most ``cap`` bytes of body, drop a redirect's body
        if ``follow``, connect only to addresses ``allow`` accepts."""
        self.chunks = []
        self.size = 0
        self.cap = cap
        self.truncated = self.discarding = False
        self.follow = follow
        self.lines.clear()
        self.parsed = -1
        self.lines_seen = 0
        self.allow = allow
        self.refused = []
        self.started = self.last = time.monotonic()

    def write(self, data: bytes) -> int | None:
        self.last = time.monotonic()
        if self.parsed < 0 and self.follow:  # the body starts: is it a redirect's?
            if self.parse() in REDIRECT_STATUSES and "location" in self.headers:
                self.discarding = True
                self.cap = REDIRECT_BODY_LIMIT
        n = len(data)
        room = self.cap - self.size
        if n <= room:
            self.chunks.append(data)
            self.size += n
            return None
        if not self.discarding:
            self.chunks.append(data[:room])
            self.size = self.cap
            self.truncated = True
        return 0  # a short count stops the transfer; libcurl drops the connection

    def parse(self) -> int:
        """Parse the header lines received so far; returns the last status code.

        libcurl hands every line (status lines of 1xx answers and of a proxy's
        CONNECT answer included) to ``lines.append``: no Python call per line.
        """
        status = 0
        headers: dict[str, tuple[str, str]] = {}
        for line in self.lines:
            if line[:5] == b"HTTP/":  # a new response: the headers start over
                parts = line.split(None, 2)
                status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                headers = {}
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = name.strip().decode("latin-1")
            text = value.strip().decode("latin-1")
            low = key.lower()
            old = headers.get(low)
            headers[low] = (key, text) if old is None else (old[0], f"{old[1]}, {text}")
        self.headers = headers
        self.parsed = len(self.lines)
        return status

    def opensocket(self, _purpose: int, address: Any) -> Any:
        ip = address.addr[0] if isinstance(address.addr, tuple) else ""
        if self.allow is not None and not self.allow(ip):
            self.refused.append(ip)
            return None  # CURL_SOCKET_BAD: libcurl tries the next address or fails
        sock = _socket.socket(address.family, address.socktype, address.protocol)
        return _NewSocket(sock.detach())

    def configure(self, options: list[tuple[int, Any]]) -> None:
        """Reset the handle to ``options`` and this exchange's callbacks."""
        e = self.easy
        if self.config is not None:
            e.reset()
        e.setopt(pycurl.WRITEFUNCTION, self.write)
        e.setopt(pycurl.HEADERFUNCTION, self.lines.append)
        e.setopt(pycurl.OPENSOCKETFUNCTION, self.opensocket)
        for opt, value in options:
            e.setopt(opt, value)
        self.config = options
        self.dirty = False

    def set_request(
        self,
        method: str,
        url: str,
        hdrs: dict[str, tuple[str, str]],
        body: bytes | None,
        proxy: str,
    ) -> None:
        """Set the libcurl options of one request (``hdrs``: lower name -> (name, value))."""
        e = self.easy
        try:
            e.setopt(pycurl.URL, url if url.isascii() else _ascii_url(url))
        except (pycurl.error, UnicodeError, ValueError) as exc:
            raise FetchError(url, "other", f"bad URL: {exc}") from None
        if proxy:
            e.setopt(pycurl.PROXY, proxy)
            self.dirty = True
        lines = [f"{k}: {v}" if v else f"{k};" for k, v in hdrs.values()]
        if method == "GET" and body is None:
            if lines:
                e.setopt(pycurl.HTTPHEADER, lines)
                self.dirty = True
            return
        self.dirty = True  # reset before the next plain GET
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""  # sent with Content-Length: 0, as these methods expect a body
        if method == "HEAD":
            e.setopt(pycurl.NOBODY, 1)
        elif method != "POST" or body is None:
            e.setopt(pycurl.CUSTOMREQUEST, method)
        if body is not None:
            e.setopt(pycurl.POSTFIELDS, body)
            # libcurl would add a form Content-Type and, for big bodies, wait
            # for "100 Continue"; send what the caller gave, as it gave it.
            if "content-type" not in hdrs:
                lines.append("Content-Type:")
            lines.append("Expect:")
        if lines:
            e.setopt(pycurl.HTTPHEADER, lines)

    def run(self, read_timeout: float | None, budget: TimeBudget | None = None) -> tuple[int, str]:
        """Perform the exchange, parked on the hub; returns libcurl's ``(code,
        message)``, or code -1 (a timeout of ours) if nothing came for
        ``read_timeout`` seconds once connected, or ``budget`` ran out."""
        loop, rt = self.loop, read_timeout
        left = None if budget is None else budget.left()
        if rt is None and left is None:
            return loop.perform(self)
        started = time.monotonic()
        # One timer watches both limits: the first look is due at the nearer one.
        self.deadline = None if left is None else started + left
        first = left if rt is None else rt if left is None else min(rt, left)
        self.read_timer = get_hub().schedule(first, _check_time, loop, self, rt)
        try:
            return loop.perform(self)
        except _ReadTimedOut:
            return -1, f"read timed out after {seconds(rt)}"
        except _OutOfTime:
            return -1, f"no complete response within {seconds(budget.seconds)}"
        finally:
            if self.read_timer is not None:
                self.read_timer.cancel()
                self.read_timer = None
            if budget is not None:
                budget.spent += time.monotonic() - started

    def put_back(self) -> None:
        """Return the handle to its loop's free list (the body is dropped)."""
        self.chunks = []
        self.loop.handles.append(self)


def take_exchange(loop: Any, options: list[tuple[int, Any]]) -> Exchange:
    """A free handle of ``loop`` (or a new one) set to ``options``."""
    free = loop.handles
    h = free.pop() if free else Exchange(loop)
    if h.config is not options or h.dirty:
        h.configure(options)
    return h


def _check_time(loop: Any, h: Exchange, rt: float | None) -> None:
    """From the hub: fail the transfer if its time budget is spent (``h.deadline``)
    or nothing came for ``rt`` seconds once connected; else look again when
    the nearer of the two may be reached."""
    h.read_timer = None
    if h.waiter is None:
        return
    now = time.monotonic()
    if h.deadline is not None and now >= h.deadline:
        loop.wake(h, _OutOfTime())
        return
    due = None
    if rt is not None:
        connected = h.easy.getinfo(pycurl.PRETRANSFER_TIME)
        lines = len(h.lines)
        if connected <= 0 or lines != h.lines_seen:
            # Still connecting (the connect timeout has that part), or header
            # lines came since the last look.
            quiet_since = now
            h.lines_seen = lines
        else:
            quiet_since = max(h.last, h.started + connected)
        due = quiet_since + rt - now
        if due <= 0:
            loop.wake(h, _ReadTimedOut())
            return
    if h.deadline is not None and (due is None or h.deadline - now < due):
        due = h.deadline - now
    h.read_timer = get_hub().schedule(due, _check_time, loop, h, rt)


class _NewSocket:
    """A socket for libcurl: pycurl keeps a duplicate of ``fileno()``, ours closes here."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def __del__(self) -> None:
        os.close(self.fd)


def _ascii_url(url: str) -> str:
    """``url`` with an IDNA host and percent-encoded path, query and fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    if parts.username is not None:
        auth = quote(parts.username, safe="%")
        if parts.password is not None:
            auth += ":" + quote(parts.password, safe="%")
        netloc = f"{auth}@{netloc}"
    safe = "%/:=&?~#+!$,;'@()*[]"
    return urlunsplit(
        (parts.scheme, netloc, quote(parts.path, safe=safe), quote(parts.query, safe=safe),
         quote(parts.fragment, safe=safe))
    )  # fmt: skip
