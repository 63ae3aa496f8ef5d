"""``nettools serve`` in production: --metrics (one process, and workers seen as
one), the access log (combined or JSON, to a file or stderr), and finding the
application (--chdir, --pythonpath, and an error that says where it looked)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from helpers.cli import Cli, run_cli
from helpers.metrics import promtool_problems, scrape
from helpers.paths import ROOT

pytestmark = pytest.mark.timeout(90)

APP = '''
import gc
import os


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    path = environ["PATH_INFO"]
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    if path == "/frozen":
        return [str(gc.get_freeze_count()).encode()]
    return [str(os.getpid()).encode() if path == "/pid" else b"hello " + body]
'''


@pytest.fixture
def appdir(tmp_path: Path) -> Path:
    (tmp_path / "opsapp.py").write_text(APP)
    return tmp_path


def serve(cwd: Path, *args: str, env: dict | None = None) -> Cli:
    return Cli("serve", "--port", "0", *args, cwd=cwd, group=True,
               env={"PYTHONPATH": str(ROOT), **(env or {})})  # fmt: skip


def get(address: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(f"http://{address}{path}", data=body)
    try:
        with opener.open(req, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_metrics_of_one_process(appdir):
    with serve(appdir, "opsapp:app", "--metrics", "127.0.0.1:0") as srv:
        ready = srv.ready()
        for _ in range(3):
            assert get(ready["address"], "/", b"abc") == (200, b"hello abc")
        assert get(ready["address"], "/missing")[0] == 404
        m = scrape(ready["metrics"])
        assert m.labels("nettools_http_requests_total", "status_class") == {"2xx": 3, "4xx": 1}
        assert m.value("nettools_http_request_duration_seconds_count", service="serve") == 4
        assert m.value("nettools_received_bytes_total") == 9
        assert m.value("nettools_sent_bytes_total") == 3 * 9 + 2
        assert m.value("nettools_connections_accepted_total") == 4
        assert m.get("process_resident_memory_bytes") > 0
        problems = promtool_problems(m.text)
        assert problems in ("", None), problems
        assert srv.stop()[0] == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_what_start_up_made_is_frozen_out_of_full_collections(appdir, workers):
    # The application, its framework and the CLI live as long as the server.
    with serve(appdir, "opsapp:app", "--workers", workers) as srv:
        status, body = get(srv.ready()["address"], "/frozen")
        assert status == 200 and int(body) > 1000
        assert srv.stop()[0] == 0


def wait_for_requests(metrics: str, want: int) -> float:
    """Scrape until the workers' requests add up to ``want`` (each worker writes
    its counts for the others every second)."""
    deadline = time.monotonic() + 20
    total = 0.0
    while time.monotonic() < deadline:
        total = sum(scrape(metrics).labels("nettools_http_requests_total", "status_class").values())
        if total == want:
            return total
        time.sleep(0.2)
    raise AssertionError(f"the workers' requests add up to {total}, not {want}")


def test_one_scrape_sees_every_worker_and_keeps_a_dead_ones_counts(appdir):
    with serve(appdir, "opsapp:app", "--workers", "2", "--metrics", "127.0.0.1:0") as srv:
        ready = srv.ready()
        pids: dict[int, int] = {}
        for _ in range(400):  # new connections until both workers have answered
            pid = int(get(ready["address"], "/pid")[1])
            pids[pid] = pids.get(pid, 0) + 1
            if len(pids) == 2 and sum(pids.values()) >= 10:
                break
        assert len(pids) == 2, pids
        total = sum(pids.values())
        wait_for_requests(ready["metrics"], total)
        m = scrape(ready["metrics"])
        assert m.value("nettools_connections_accepted_total", service="serve") == total
        assert m.value("nettools_http_request_duration_seconds_count") == total
        # A worker killed (its counts all written: nothing came since) and replaced
        # takes none of them with it.
        os.kill(next(iter(pids)), signal.SIGKILL)
        answered = 0
        for _ in range(400):
            try:
                pid = int(get(ready["address"], "/pid")[1])
            except OSError:
                continue  # a connection queued at the killed worker
            answered += 1
            if pid not in pids:
                break  # the replacement answers
        else:
            raise AssertionError("no replacement worker answered")
        wait_for_requests(ready["metrics"], total + answered)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.wait()[0] == 0


def test_access_log_to_a_file_in_json_and_in_the_combined_format(appdir, tmp_path):
    log = tmp_path / "access.log"
    with serve(appdir, "opsapp:app", "--access-log", str(log),
               "--access-log-format", "json") as srv:  # fmt: skip
        address = srv.ready()["address"]
        assert get(address, "/x?y=1", b"data")[0] == 200
        assert srv.stop()[0] == 0
    (line,) = log.read_text().splitlines()
    entry = json.loads(line)
    assert entry["event"] == "request" and entry["service"] == "serve"
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/x?y=1", 200)
    assert entry["bytes"] == 10 and entry["request_bytes"] == 4
    assert entry["peer"].startswith("127.0.0.1:") and entry["time"].endswith("Z")
    with serve(appdir, "opsapp:app", "--access-log", str(log), "--workers", "2") as srv:
        address = srv.ready()["address"]
        assert get(address, "/missing")[0] == 404
        assert srv.stop()[0] == 0
    combined = log.read_text().splitlines()[1]
    assert re.match(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /missing HTTP/1\.1" 404 2 "-" ', combined)


def test_json_logs_make_the_access_log_json_too(appdir):
    with serve(appdir, "opsapp:app", "--access-log", "-", "--log-format", "json") as srv:
        address = srv.ready()["address"]
        assert get(address, "/")[0] == 200
        code, _, err = srv.stop()
    assert code == 0
    entries = [json.loads(line) for line in err.splitlines()]
    assert [e["path"] for e in entries if e.get("event") == "request"] == ["/"]


def test_the_app_is_found_with_chdir_or_pythonpath(appdir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (["--chdir", str(appdir)], ["--pythonpath", f"/nonexistent-no,{appdir}"]):
        if args[0] == "--pythonpath":
            res = run_cli("serve", "opsapp:app", "--port", "0", *args, cwd=elsewhere)
            assert res.returncode == 2
            assert "--pythonpath /nonexistent-no: not a directory" in res.stderr
            args = ["--pythonpath", str(appdir)]
        with serve(elsewhere, "opsapp:app", *args) as srv:
            assert get(srv.ready()["address"], "/", b"!")[1] == b"hello !"
            assert srv.stop()[0] == 0


def test_an_app_not_found_says_where_it_looked_and_what_to_do(tmp_path):
    res = run_cli("serve", "opsapp:app", "--port", "0", cwd=tmp_path)
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("nettools serve: cannot import 'opsapp': No module named 'opsapp'")
    assert f"looked in {tmp_path}" in line
    assert "--chdir DIR or --pythonpath DIR" in line


def test_a_metrics_port_in_use_is_one_line(appdir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for workers in ("1", "2"):
            res = run_cli("serve", "opsapp:app", "--port", "0", "--workers", workers,
                          "--metrics", f"127.0.0.1:{port}", cwd=appdir)  # fmt: skip
            assert res.returncode == 1, res.stderr
            assert res.stderr.strip() == (f"nettools serve: --metrics: cannot listen on "
                                          f"127.0.0.1:{port}: address already in use")
