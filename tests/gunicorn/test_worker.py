"""The gunicorn worker, under a real gunicorn and driven by wrk."""

from __future__ import annotations

import queue
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request

import pytest

pytest.importorskip("gunicorn")

APP = textwrap.dedent(
    """
    import threading, time, os

    released = threading.Event()   # green: the worker patched threading

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/wait":
            released.wait(20)
            body = b"released" if released.is_set() else b"timed out"
        elif path == "/release":
            released.set()
            body = b"ok"
        elif path == "/slow":
            open(os.path.join(os.path.dirname(__file__), "in-flight"), "w").close()
            time.sleep(1)
            body = b"done"
        elif path == "/sleep":
            time.sleep(0.01)       # green too
            body = b"slept"
        else:
            body = b"hello from %d" % os.getpid()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    """
)


class Gunicorn:
    """gunicorn with the nettools worker on 127.0.0.1 port 0 (the port read from its log)."""

    def __init__(self, tmp_path, *args: str) -> None:
        (tmp_path / "gapp.py").write_text(APP)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "nettools.gunicorn.Worker",
             "-b", "127.0.0.1:0", "--chdir", str(tmp_path), "--graceful-timeout", "5",
             "--no-control-socket",
             *args, "gapp:app"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.log: list[str] = []
        # A thread reads the log: select() on a buffered text pipe would miss
        # lines already read into the buffer.
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_log, daemon=True).start()
        self.port = int(self.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        self.wait_for(r"Booting worker with pid")

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, pattern: str, limit: int = 500) -> re.Match:
        for _ in range(limit):
            try:
                line = self.lines.get(timeout=30)
            except queue.Empty:
                line = ""
            if not line:
                raise AssertionError("gunicorn said nothing more:\n" + "".join(self.log))
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"no {pattern!r} in:\n" + "".join(self.log))

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
            return r.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self.proc.kill()


@pytest.fixture
def gunicorn(tmp_path):
    servers = []

    def start(*args: str) -> Gunicorn:
        servers.append(Gunicorn(tmp_path, *args))
        return servers[-1]

    yield start
    for g in servers:
        g.stop()


def test_one_worker_serves_requests_concurrently(gunicorn):
    g = gunicorn("-w", "1")
    results = []
    waiter = threading.Thread(target=lambda: results.append(g.get("/wait")))
    waiter.start()
    # The first request is parked in the worker's only process; a second one is
    # still served, and releases it.
    for _ in range(200):
        if g.get("/release") == b"ok" and results:
            break
    waiter.join(30)
    assert results == [b"released"]
    assert g.stop() == 0
    log = "".join(g.log)
    assert "Traceback" not in log


def test_under_wrk_every_response_is_a_200(gunicorn):
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed here (make system-deps installs it)")
    g = gunicorn("-w", "2", "--worker-connections", "200")
    out = subprocess.run(
        [wrk, "-t1", "-c20", "-d1s", "--latency", f"http://127.0.0.1:{g.port}/sleep"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    assert requests > 20, out
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    assert g.stop() == 0


def test_max_requests_restarts_the_worker(gunicorn):
    g = gunicorn("-w", "1", "--max-requests", "3")
    pids = {g.get("/")[len(b"hello from "):] for _ in range(7)}
    # 7 requests, at most 3 per worker process: at least 3 processes served them.
    assert len(pids) >= 3
    g.wait_for(r"Autorestarting worker")
    assert g.stop() == 0


def test_sigterm_lets_an_in_flight_request_finish(gunicorn, tmp_path):
    g = gunicorn("-w", "1")
    results = []
    client = threading.Thread(target=lambda: results.append(g.get("/slow")))
    client.start()
    marker = tmp_path / "in-flight"
    for _ in range(300):
        if marker.exists():
            break
        client.join(0.01)
    assert marker.exists()
    g.proc.send_signal(signal.SIGTERM)
    client.join(30)
    assert results == [b"done"]
    assert g.stop() == 0
