"""httpload: a closed-loop HTTP/1.1 GET load generator that drops response bodies in the kernel.

    python -m bench.loadgen.httpload [-c CONNS] [-d SECONDS] [-n REQUESTS] URL

It opens CONNS keep-alive connections and, on each, sends ``GET PATH`` and waits for the whole
answer before the next request, for SECONDS (or until REQUESTS answers); then prints one JSON
object: requests, seconds, requests/s, p50/p99 latency (microseconds), errors, lowat_stalls
(below) and the CPU it used while loading.

Why it exists: wrk reads every body into user space 8 KiB at a time, so on a 1 MiB file the
kernel's copy of each byte into wrk's buffer costs wrk more CPU per answer than a sendfile
server spends making it, and wrk sets the pace. Here only the response head is read (at most
HEAD_READ bytes per call, parsed with httptools); the rest of the body, whose length the head's
Content-Length gives, goes to ``recv(MSG_TRUNC)``, which on TCP makes Linux free the data
without copying it anywhere. ``SO_RCVLOWAT`` set to the bytes still to come makes that one
wake-up per body rather than one per segment; a connection with no event for STALL_S gets it
lowered, counted in ``lowat_stalls`` (0 in a sound run). One process, one thread, one
level-triggered epoll.

Answers are counted as errors when their status is not 2xx/3xx, when they have no
Content-Length (chunked bodies are not supported), or when the connection closes or resets
before the answer's end; a connection that fails is not reopened. A server that closes after
each answer (``Connection: close``, HTTP/1.0) gets a new connection for the next request, as
wrk does; latency counts from the request's send, not the connect.
"""

from __future__ import annotations

import argparse
import errno
import json
import resource
import select
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

HEAD_READ = 4096  # bytes read (copied) per call while the head is incomplete
TRUNC_CHUNK = 1 << 22  # at most this many body bytes dropped per recv
MAX_HEAD = 65536
LOWAT_FROM = 65536  # bodies with more bytes left than this raise SO_RCVLOWAT
RCVBUF_FOR = 1 << 23  # bytes each socket's receive buffer is raised to hold (Linux caps it)
STALL_S = 0.5  # a connection with no event for this long gets its SO_RCVLOWAT lowered


class HeadError(ValueError):
    """A response head that this generator cannot follow."""


@dataclass(frozen=True)
class Head:
    """What the generator needs from a response head."""

    size: int  # bytes of the head, blank line included
    status: int
    content_length: int
    keep_alive: bool


class _HeadFields:
    """httptools callbacks: keeps the Content-Length header and notes the head's end."""

    def __init__(self) -> None:
        self.content_length: bytes | None = None
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-length":  # the parser refuses a second one
            self.content_length = value

    def on_headers_complete(self) -> None:
        self.complete = True


def parse_head(data: bytes) -> Head | None:
    """The head at the start of ``data``, or None while it is incomplete.

    Raises HeadError for a malformed head, one longer than MAX_HEAD, or one without a
    Content-Length (the generator must know where each body ends to drop it unread).
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEAD:
            raise HeadError(f"response head longer than {MAX_HEAD} bytes")
        return None
    size = end + 4
    fields = _HeadFields()
    parser = httptools.HttpResponseParser(fields)
    try:
        # Only the head: the body is never fed, so the parser stops at the headers' end.
        parser.feed_data(data[:size])
    except httptools.HttpParserError as exc:
        raise HeadError(f"malformed response head: {exc}") from None
    if not fields.complete:
        raise HeadError("malformed response head")
    if fields.content_length is None:
        raise HeadError("response without Content-Length")
    try:
        length = int(fields.content_length)
    except ValueError:
        raise HeadError(f"bad Content-Length {fields.content_length!r}") from None
    if length < 0:
        raise HeadError(f"bad Content-Length {length}")
    return Head(size, parser.get_status_code(), length, parser.should_keep_alive())


def request_bytes(host: str, port: int, path: str) -> bytes:
    """The GET request every connection sends, over and over."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("ascii")


class _Conn:
    __slots__ = ("sock", "connecting", "head", "keep_alive", "remaining", "sent_ns", "lowat",
                 "events", "events_checked")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connecting = True
        self.head = b""  # bytes of the head read so far
        self.keep_alive = True
        self.remaining = -1  # body bytes still to drop; -1 while the head is incomplete
        self.sent_ns = 0
        self.lowat = 1  # the socket's SO_RCVLOWAT
        self.events = 0  # epoll events handled, and their count at the last stall check
        self.events_checked = 0


def _percentile_us(sorted_ns: list[int], pct: float) -> float:
    if not sorted_ns:
        return -1.0
    index = min(len(sorted_ns) - 1, int(len(sorted_ns) * pct / 100))
    return sorted_ns[index] / 1000


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Load:
    """The connections of one run and what they have counted."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.address = (host, port)
        self.request = request_bytes(host, port, path)
        self.poller = select.epoll()
        self.live: dict[int, _Conn] = {}
        self.trunc = memoryview(bytearray(TRUNC_CHUNK))  # never written: MSG_TRUNC copies nothing
        self.latencies: list[int] = []  # ns per answer
        self.errors = 0
        self.stalls = 0  # polls that found nothing while some SO_RCVLOWAT was raised
        self.lowat_cap = 0  # the largest SO_RCVLOWAT used: a quarter of the receive buffer

    def connect(self) -> None:
        """Open one connection without blocking: a full accept queue (a server with a short
        backlog that closes after each answer) must not stall the others."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Raising SO_RCVLOWAT makes Linux grow the receive buffer to hold that many bytes
        # (before the connect, so the window scale fits it); a body's lowat then stays well
        # below the buffer's size, far from the zero window that would leave it short for ever.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, RCVBUF_FOR)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        if not self.lowat_cap:
            self.lowat_cap = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 4
        if sock.connect_ex(self.address) not in (0, errno.EINPROGRESS):
            self.errors += 1  # refused at once; else the outcome comes as EPOLLOUT
            sock.close()
            return
        self.live[sock.fileno()] = _Conn(sock)
        self.poller.register(sock.fileno(), select.EPOLLOUT)

    def fail(self, fd: int) -> None:
        self.errors += 1
        self.close(fd)

    def close(self, fd: int) -> None:
        self.poller.unregister(fd)
        self.live.pop(fd).sock.close()

    def send(self, conn: _Conn) -> None:
        conn.sent_ns = time.perf_counter_ns()
        conn.sock.send(self.request)  # a few dozen bytes into an empty buffer: all sent

    def ready(self, fd: int) -> None:
        """One epoll event on ``fd``: go as far with its answer as the queued bytes allow."""
        conn = self.live.get(fd)
        if conn is None:
            return
        conn.events += 1
        try:
            if conn.connecting:
                err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, "connect failed")
                conn.connecting = False
                self.poller.modify(fd, select.EPOLLIN)
                self.send(conn)
                return
            if conn.remaining < 0:
                data = conn.sock.recv(HEAD_READ)
                if not data:
                    raise OSError("connection closed before an answer")
                conn.head += data
                head = parse_head(conn.head)
                if head is None:
                    return
                conn.remaining = head.content_length - (len(conn.head) - head.size)
                conn.keep_alive = head.keep_alive
                conn.head = b""
                if conn.remaining < 0:
                    raise HeadError("more bytes than the answer's Content-Length")
                if not 200 <= head.status < 400:
                    raise HeadError(f"status {head.status}")
            elif conn.remaining:
                got = conn.sock.recv_into(self.trunc, min(conn.remaining, TRUNC_CHUNK),
                                          socket.MSG_TRUNC)
                if not got:
                    raise OSError("connection closed in a body")
                conn.remaining -= got
            if conn.remaining > LOWAT_FROM or conn.lowat > conn.remaining > 0:
                # Wake when the rest of the body is queued (or a buffer's quarter of it),
                # not per segment; never wait for more bytes than are still to come.
                self.set_lowat(conn, min(conn.remaining, self.lowat_cap))
            elif conn.remaining == 0:
                self.answered(fd, conn)
        except (OSError, HeadError):
            self.fail(fd)

    def answered(self, fd: int, conn: _Conn) -> None:
        self.latencies.append(time.perf_counter_ns() - conn.sent_ns)
        if not conn.keep_alive:  # as wrk does: a new connection for the next request
            self.close(fd)
            self.connect()
            return
        conn.remaining = -1
        self.set_lowat(conn, 1)
        self.send(conn)

    @staticmethod
    def set_lowat(conn: _Conn, lowat: int) -> None:
        if conn.lowat != lowat:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
            conn.lowat = lowat

    def unstall(self) -> None:
        """Lower the SO_RCVLOWAT of every connection that had no event since the last call:
        a safety net, counted, for a body that could not reach its lowat (which the raised
        buffer should prevent); called every STALL_S."""
        for conn in self.live.values():
            if conn.lowat > 1 and conn.events == conn.events_checked:
                self.stalls += 1
                self.set_lowat(conn, 1)
            conn.events_checked = conn.events

    def shut(self) -> None:
        for conn in self.live.values():
            conn.sock.close()
        self.live.clear()
        self.poller.close()


def run(host: str, port: int, path: str, conns: int, seconds: float,
        max_requests: int | None = None) -> dict[str, Any]:
    """Load ``http://host:port/path`` with ``conns`` connections for ``seconds``, or until
    ``max_requests`` answers have come (at least that many: the answers of one poll all
    count)."""
    load = _Load(host, port, path)
    cpu_start = _cpu_s()
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    try:
        for _ in range(conns):
            load.connect()
        check_at = start + int(STALL_S * 1e9)
        while load.live and (max_requests is None or len(load.latencies) < max_requests):
            now = time.perf_counter_ns()
            if now >= deadline:
                break
            if now >= check_at:
                load.unstall()
                check_at = now + int(STALL_S * 1e9)
            for fd, _events in load.poller.poll(min(STALL_S, (deadline - now) / 1e9)):
                load.ready(fd)
        elapsed = (time.perf_counter_ns() - start) / 1e9
        cpu = _cpu_s() - cpu_start
    finally:
        load.shut()
    latencies = sorted(load.latencies)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "ops_per_s": len(latencies) / elapsed,
        "p50_us": _percentile_us(latencies, 50),
        "p99_us": _percentile_us(latencies, 99),
        "errors": load.errors,
        "lowat_stalls": load.stalls,
        "cpu_s": cpu,
        "cpu_us_per_req": cpu / len(latencies) * 1e6 if latencies else -1.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen.httpload",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--conns", type=int, default=100, help="connections (100)")
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds (5)")
    parser.add_argument("-n", "--requests", type=int, help="stop after this many answers")
    parser.add_argument("url", help="http://HOST:PORT/PATH")
    args = parser.parse_args(argv)
    url = urlsplit(args.url)
    if (url.scheme != "http" or not url.hostname or args.conns < 1 or args.duration <= 0
            or (args.requests is not None and args.requests < 1)):
        parser.error("need an http:// URL with a host, --conns >= 1, --duration > 0 and "
                     "--requests >= 1")
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    try:
        result = run(url.hostname, url.port or 80, path, args.conns, args.duration,
                     args.requests)
    except OSError as exc:
        print(f"httpload: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
