"""``nettools static`` through the real entry point, in a subprocess."""

from __future__ import annotations

import urllib.request

import pytest
from helpers.cli import NO_PROXY, Cli, run_cli, stop_summary

pytestmark = pytest.mark.timeout(60)


def fetch(address: str, path: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{address}{path}", timeout=10) as resp:
        return resp.status, resp.read()


def test_serves_a_directory_and_prints_its_summary_on_sigterm(tmp_path):
    (tmp_path / "index.html").write_text("<h1>hi</h1>")
    (tmp_path / "data.json").write_text("{}")
    with Cli("static", str(tmp_path), "--access-log", env=NO_PROXY) as srv:
        ready = srv.ready()
        assert ready["service"] == "static"
        assert fetch(ready["address"], "/") == (200, b"<h1>hi</h1>")
        assert fetch(ready["address"], "/data.json") == (200, b"{}")
        code, _, err = srv.stop()
    assert code == 0
    summary = stop_summary(err, "static")
    assert summary["requests"] == 2 and summary["connections"] == 2
    assert summary["bytes_out"] > len("<h1>hi</h1>{}")
    assert '"GET /data.json HTTP/1.1" 200 2' in err  # the access log


@pytest.mark.parametrize(("args", "message"), [
    (["{missing}"], "not a directory"),
    (["{dir}", "--index", "a/b.html"], "--index is a file name"),
    (["{dir}", "--tls-cert", "{missing}"], "cannot load --tls-cert"),
    (["{dir}", "--revalidate", "soon"], "invalid duration"),
])  # fmt: skip
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    argv = [a.format(dir=tmp_path, missing=tmp_path / "nope") for a in args]
    res = run_cli("static", *argv)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert message in res.stderr


def test_a_port_in_use_is_a_runtime_error(tmp_path):
    with Cli("static", str(tmp_path)) as first:
        address = first.ready()["address"]
        res = run_cli("static", str(tmp_path), "--listen", address)
        assert res.returncode == 1
        assert "address already in use" in res.stderr and "Traceback" not in res.stderr


def test_metrics_count_requests_by_status_class_and_the_bytes_sent(tmp_path):
    from helpers.metrics import scrape

    (tmp_path / "a.txt").write_text("x" * 1000)
    with Cli("static", str(tmp_path), "--metrics", "127.0.0.1:0", env=NO_PROXY) as srv:
        ready = srv.ready()
        assert fetch(ready["address"], "/a.txt") == (200, b"x" * 1000)
        try:
            fetch(ready["address"], "/missing")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        m = scrape(ready["metrics"])
        assert m.value("nettools_http_requests_total", service="static",
                       status_class="2xx") == 1
        assert m.value("nettools_http_requests_total", status_class="4xx") == 1
        assert m.value("nettools_http_request_duration_seconds_count") == 2
        assert m.value("nettools_connections_accepted_total") == 2
        # Counted once (by the server, not again by the request hook): the body and heads.
        assert 1000 < m.value("nettools_sent_bytes_total") < 2000
        assert srv.stop()[0] == 0
