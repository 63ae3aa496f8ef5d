"""The frameworks' own development servers under ``monkey_patch()``: Flask's
``app.run()`` (threaded, its default) and Django's ``runserver`` handle each
request in a thread, and patched threads are greenthreads, so they serve many
slow requests at once in one OS thread.

Each server runs in a fresh interpreter that patches first.  Its view waits at a
``threading.Barrier`` of ``N`` parties: every request is answered only once all
``N`` are in the server at the same time, so all ``N`` succeed only if they run
concurrently (served one at a time, the first would wait alone until the
barrier's timeout breaks it and every request fails).  The client side is
``N`` green connections from this process.
"""

from __future__ import annotations

import os
import re
import select
import sys
import textwrap
import time

import pytest
from helpers.process import Program

import nettools
from nettools.tools.plumbing.service import raise_fd_limit

pytestmark = pytest.mark.timeout(90)

N = 200
T = 30  # the barrier's timeout, and any single wait of the test

VIEW = f"""
import nettools
nettools.monkey_patch()

import threading
import time

barrier = threading.Barrier({N}, timeout={T})


def together():
    barrier.wait()   # all {N} requests at once, or none
    time.sleep(0.2)  # and then slow
    return "together"
"""

FLASK = VIEW + """
from flask import Flask

app = Flask(__name__)
app.get("/together")(together)
app.run("127.0.0.1", 0)  # threaded=True is Flask's default
"""

DJANGO = VIEW + """
import django
from django.conf import settings
from django.core.management import call_command
from django.core.servers import basehttp
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("together", lambda request: HttpResponse(together()))]
settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test",
    INSTALLED_APPS=[], MIDDLEWARE=[], DATABASES={},
)
django.setup()
# runserver listens with a backlog of 10: a burst of simultaneous connects would
# overflow it and wait for SYN retransmits (seconds) -- the README says so.
basehttp.WSGIServer.request_queue_size = 1024
call_command("runserver", "127.0.0.1:0", use_reloader=False)  # threading is its default
"""

ADDRESS = re.compile(r"http://127\.0\.0\.1:(\d+)")


def _port(prog: Program) -> int:
    """The port a development server prints when it starts (on stdout or stderr)."""
    deadline = time.monotonic() + T
    fds = [prog.proc.stdout.fileno(), prog.proc.stderr.fileno()]
    seen = ""
    while fds and time.monotonic() < deadline:
        # Raw reads: a buffered readline() could keep the line with the address in
        # its buffer, where select() never sees it.
        ready, _, _ = select.select(fds, [], [], deadline - time.monotonic())
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                fds.remove(fd)
                continue
            seen += data.decode(errors="replace")
            if m := ADDRESS.search(seen):
                return int(m.group(1))
    raise AssertionError(f"the server never said where it listens: {seen!r}")


def _get(port: int) -> bytes:
    with nettools.Timeout(T + 10):
        sock = nettools.connect(("127.0.0.1", port))
        try:
            sock.sendall(b"GET /together HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        finally:
            sock.close()
    reply = b"".join(chunks)
    return reply.split(b" ", 2)[1] + b" " + reply.rpartition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("server", ["flask", "django"])
def test_development_server_serves_requests_concurrently(server: str) -> None:
    pytest.importorskip(server)
    code = textwrap.dedent(FLASK if server == "flask" else DJANGO)
    raise_fd_limit(N + 256)
    with Program([sys.executable, "-u", "-c", code]) as prog:
        port = _port(prog)
        replies = list(nettools.GreenPool(N).imap(lambda _: _get(port), range(N)))
        assert replies == [b"200 together"] * N
