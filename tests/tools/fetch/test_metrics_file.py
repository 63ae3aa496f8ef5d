"""``nettools fetch --metrics-file``: the run's requests, bytes, errors and end,
in the textfile format node-exporter reads."""

from __future__ import annotations

import socket

import pytest
from helpers.cli import NO_PROXY, run_cli
from helpers.metrics import Scrape, promtool_problems
from helpers.wsgi import ServerThread

pytestmark = pytest.mark.timeout(60)


def site(environ, start_response):
    if environ["PATH_INFO"] == "/ok":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * 100]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_writes_its_metrics_at_the_end(tmp_path):
    path = tmp_path / "fetch.prom"
    with ServerThread(site) as srv:
        res = run_cli("fetch", "--metrics-file", str(path), srv.url + "/ok", srv.url + "/gone",
                      f"http://127.0.0.1:{closed_port()}/", env=NO_PROXY)  # fmt: skip
    assert res.returncode == 2, res.stderr
    m = Scrape(path.read_text())
    assert m.labels("nettools_http_client_requests_total", "status_class") == {
        "2xx": 1, "4xx": 1, "error": 1}
    assert m.value("nettools_http_client_request_duration_seconds_count", service="fetch") == 3
    assert m.value("nettools_received_bytes_total") == 102
    assert m.labels("nettools_errors_total", "kind") == {"connect": 1}
    assert m.value("nettools_run_exit_code") == 2
    assert m.value("nettools_run_duration_seconds") >= 0
    assert not [name for name in m.types if name.startswith(("process_", "nettools_hub"))]
    problems = promtool_problems(m.text)
    assert problems in ("", None), problems


def test_an_unwritable_metrics_file_is_one_line_and_exit_1(tmp_path):
    with ServerThread(site) as srv:
        res = run_cli("fetch", "--metrics-file", str(tmp_path / "no" / "such.prom"),
                      srv.url + "/ok", env=NO_PROXY)  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith(
        "nettools fetch: cannot write --metrics-file: No such file or directory")
