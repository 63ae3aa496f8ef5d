"""nettools.debug's greenthread dump: every greenthread's stack and what it waits on,
on the spot or on a signal."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers.green import settle
from helpers.paths import ROOT

import nettools
from nettools import debug
from nettools.green import socket

pytestmark = pytest.mark.timeout(60)


def blocks(text: str) -> dict[str, str]:
    """The state line of each greenthread in a dump, by the functions in its stack."""
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=  \S)", text):
        head, _, stack = block.partition("\n")
        state = head.split(": ", 1)[-1]
        for name in re.findall(r", in (\w+)", stack):
            found.setdefault(name, state)
    return found


def test_the_dump_says_what_each_greenthread_waits_on():
    a, b = socket.socketpair()
    queue = nettools.Queue()
    event = nettools.Event()

    def reader():
        a.recv(10)

    def sleeper():
        nettools.sleep(300)

    def getter():
        queue.get()

    def waiter():
        event.wait()

    def bounded_reader():
        with nettools.Timeout(200):
            b.recv(10)

    def dumper():
        return debug.format_greenthreads()

    gts = [nettools.spawn(f) for f in (reader, sleeper, getter, waiter, bounded_reader)]
    try:
        settle()
        text = nettools.spawn(dumper).wait()
    finally:
        for gt in gts:
            gt.kill()
        a.close()
        b.close()
    states = blocks(text)
    assert re.fullmatch(r"waits on fd \d+ read \(socket\)", states["reader"]), states
    assert re.fullmatch(r"waits on sleep, due in 29\d\.\d+s", states["sleeper"]), states
    assert states["getter"].startswith("waits on Queue.get on <Queue"), states
    assert states["waiter"].startswith("waits on Event.wait on <Event"), states
    pattern = r"waits on fd \d+ read \(socket\); a timeout \(Timeout\), due in 19\d\.\d+s"
    assert re.fullmatch(pattern, states["bounded_reader"]), states
    assert states["dumper"] == "running (asked for this dump)", states
    assert ", in format_greenthreads" not in text  # the dump's own frames are left out
    assert text.startswith("Greenthreads of this thread: ")


def test_a_signal_dumps_every_greenthread_even_while_one_spins():
    # The hang the dump is for: a greenthread that never yields starves the
    # others; the signal comes while it spins, and shows it with the rest.
    script = textwrap.dedent(
        """
        import nettools
        from nettools import debug
        from nettools.green import socket

        debug.dump_greenthreads_on_signal()  # SIGUSR2, to stderr
        a, b = socket.socketpair()
        queue = nettools.Queue()

        def reader():
            a.recv(10)

        def getter():
            queue.get()

        def spinner():
            print("spinning", flush=True)
            while True:
                pass

        nettools.spawn(reader)
        nettools.spawn(getter)
        nettools.sleep(0.01)
        nettools.spawn(spinner)
        nettools.sleep(0)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout.readline() == b"spinning\n"
        proc.send_signal(signal.SIGUSR2)
        text = b""
        for _ in range(100):  # until every greenthread is in the dump (10 s at most)
            if all(f", in {name}" in text.decode() for name in ("reader", "getter", "spinner")):
                break
            ready, _, _ = select.select([proc.stderr], [], [], 0.1)
            if ready:
                text += os.read(proc.stderr.fileno(), 65536)
        states = blocks(text.decode())
    finally:
        proc.kill()
        proc.wait()
    assert re.fullmatch(r"waits on fd \d+ read \(socket\)", states["reader"]), text
    assert states["getter"].startswith("waits on Queue.get"), text
    assert states["spinner"] == "running (the signal came here)", text
    assert ", in _on_signal" not in text.decode()


def test_dump_greenthreads_writes_to_an_fd():
    r, w = os.pipe()
    try:
        debug.dump_greenthreads(w)
        os.close(w)
        w = -1
        text = b""
        while chunk := os.read(r, 65536):
            text += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert text.decode().startswith("Greenthreads of this thread: ")
    assert "running (asked for this dump)" in text.decode()


def test_a_dead_weak_proxy_among_the_objects_does_not_stop_the_dump():
    # gc.get_objects() may hold a weakref.proxy whose referent is gone, and
    # isinstance() on one raises ReferenceError.
    import weakref

    class Referent:
        pass

    referent = Referent()
    proxy = weakref.proxy(referent)
    del referent
    text = debug.format_greenthreads()
    assert "running (asked for this dump)" in text
    del proxy
