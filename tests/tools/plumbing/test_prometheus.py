"""A real Prometheus server (Debian's ``prometheus``) scrapes ``nettools echo
--metrics`` and answers queries about it through its HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from helpers.cli import Cli
from helpers.sockets import parse_address

pytestmark = pytest.mark.timeout(90)

CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: nettools
    static_configs:
      - targets: ["{target}"]
"""


def free_port() -> int:
    # Prometheus cannot report a port it picked: take one the kernel just gave out.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """``prometheus`` on loopback with its own config and data directory."""

    def __init__(self, tmp_path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("Debian's prometheus is not installed (make system-deps)")
        (tmp_path / "prometheus.yml").write_text(CONFIG.format(target=target))
        self.address = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address={self.address}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def query(self, expr: str) -> list:
        url = f"http://{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, expr: str, want: float, seconds: float = 40) -> float:
        """Poll ``expr`` until its single value is ``want``; the last value seen."""
        deadline = time.monotonic() + seconds
        value = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.proc.stderr.read()}")
            try:
                result = self.query(expr)
            except OSError:
                result = []  # not listening yet
            if result:
                value = float(result[0]["value"][1])
                if value == want:
                    return value
            time.sleep(0.25)
        raise AssertionError(f"{expr}: last value {value}, wanted {want}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def test_prometheus_scrapes_a_running_server(tmp_path):
    with Cli("echo", "--metrics", "127.0.0.1:0") as srv:
        ready = srv.ready()
        prom = Prometheus(tmp_path, ready["metrics"])
        try:
            prom.wait_for('up{job="nettools"}', 1)
            addr = parse_address(ready["address"])
            for i in range(3):
                with socket.create_connection(addr, timeout=10) as c:
                    c.sendall(b"line %d\n" % i)
                    assert c.recv(100) == b"line %d\n" % i
            accepted = 'nettools_connections_accepted_total{job="nettools",service="echo"}'
            prom.wait_for(accepted, 3)
            prom.wait_for('sum(nettools_connections_closed_total{reason="client"})', 3)
            prom.wait_for("nettools_received_bytes_total", 21)
            # The histogram works with PromQL's histogram functions.
            lag = prom.query("histogram_quantile(0.5, nettools_hub_lag_seconds_bucket)")
            assert 0 <= float(lag[0]["value"][1]) < 1
        finally:
            prom.stop()
        assert srv.stop()[0] == 0
