"""Helpers shared by the kernel, green socket, TLS and server tests."""

from __future__ import annotations

import contextlib
import socket as stdsocket

from nettools import sleep, spawn


def ipv6_available() -> bool:
    """True if this machine can bind the IPv6 loopback ``::1``."""
    if not stdsocket.has_ipv6:
        return False
    try:
        with stdsocket.socket(stdsocket.AF_INET6, stdsocket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def spin(turns: int = 5) -> None:
    """Let ready greenthreads run for ``turns`` hub turns (each runs until its next wait)."""
    for _ in range(turns):
        sleep(0)


@contextlib.contextmanager
def ticking(interval: float = 0.01):
    """Count hub timer ticks in a greenthread: proof that the hub kept running."""
    ticks = [0]

    def run():
        while True:
            sleep(interval)
            ticks[0] += 1

    gt = spawn(run)
    try:
        yield ticks
    finally:
        gt.kill()


def recv_exactly(sock, n: int) -> bytes:
    """Read exactly ``n`` bytes from ``sock``; ``EOFError`` if the peer closes first."""
    chunks = []
    while n:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            raise EOFError("peer closed early")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_all(sock) -> bytes:
    """Read from ``sock`` until the peer closes; everything it sent."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
