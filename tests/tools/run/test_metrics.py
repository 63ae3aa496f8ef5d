"""``nettools run FILE --metrics ADDR``: one /metrics for every service of the file,
each labelled with its type and name."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request

import pytest
from helpers.cli import NO_PROXY, clean_env
from helpers.events import Events
from helpers.metrics import promtool_problems, scrape
from helpers.sockets import Target, echo_handler, echo_through, parse_address, recv_exactly

pytestmark = pytest.mark.timeout(90)

APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
'''


def http_get(address: str, path: str = "/") -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{address}{path}", timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def echo_once(address: str, data: bytes = b"ping\n") -> None:
    with socket.create_connection(parse_address(address), timeout=10) as sock:
        sock.sendall(data)
        assert recv_exactly(sock, len(data)) == data


def test_one_endpoint_reports_every_service_by_type_and_name(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>site</h1>")
    (tmp_path / "metricsapp.py").write_text(APP)
    target = Target(echo_handler)
    file = tmp_path / "run.toml"
    file.write_text(textwrap.dedent(f"""
        [services.a]
        type = "echo"
        raw = true
        [services.b]
        type = "echo"
        raw = true
        [services.app]
        type = "serve"
        app = "metricsapp:app"
        patch = false
        [services.site]
        type = "static"
        root = "site"
        [services.db]
        type = "forward"
        rules = ["pg=0:127.0.0.1:{target.port}"]
    """))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nettools", "run", str(file), "--metrics", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(NO_PROXY),
    )  # fmt: skip
    try:
        out = Events(proc.stdout)
        ready = out.until(lambda e: e["event"] == "ready")[-1]
        services = ready["services"]
        echo_once(services["a"]["address"])
        echo_once(services["a"]["address"])
        echo_once(services["b"]["address"])
        assert http_get(services["app"]["address"]) == 200
        assert http_get(services["site"]["address"]) == 200
        assert http_get(services["site"]["address"], "/nothing") == 404
        assert echo_through(parse_address(services["db"]["address"]), b"x" * 500) == b"x" * 500

        m = scrape(ready["metrics"])
        accepted = "nettools_connections_accepted_total"
        assert m.value(accepted, service="echo", name="a") == 2
        assert m.value(accepted, service="echo", name="b") == 1
        assert m.value(accepted, service="forward", name="db") == 1
        assert m.value("nettools_http_requests_total", service="serve", name="app",
                       status_class="2xx") == 1
        assert m.value("nettools_http_requests_total", service="static", name="site",
                       status_class="4xx") == 1
        assert m.value("nettools_forward_received_bytes_total", service="forward", name="db",
                       rule="pg") == 500
        assert m.value("nettools_received_bytes_total", service="echo", name="a") == 10
        # The hub and the version once, as the run's.
        assert m.value("nettools_info", service="run", name="",
                       version=m.labels("nettools_info", "version").popitem()[0]) == 1
        assert m.value("nettools_hub_lag_seconds_count", service="run", name="") >= 0
        problems = promtool_problems(m.text)
        assert not problems, problems
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        target.close()
