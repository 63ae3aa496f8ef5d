"""``nettools forward --api``: Toxiproxy's HTTP API, driven by Toxiproxy's own
Python client (``toxiproxy-python`` from PyPI, unmodified) and by raw HTTP as
Toxiproxy's README documents it.  The forwarder runs as ``python -m nettools``.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import pytest
from helpers.cli import Cli
from helpers.sockets import Target, echo_handler, parse_address, recv_exactly

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


@pytest.fixture
def echo_target():
    target = Target(echo_handler)
    yield target
    target.close()


class Forwarder:
    """``nettools forward ARGS --ready-file F`` and its ready lines, by role."""

    def __init__(self, tmp_path: Path, *args: str, lines: int = 1) -> None:
        self.ready_file = tmp_path / "ready.jsonl"
        self.cli = Cli("forward", *args, "--ready-file", str(self.ready_file))
        deadline = time.monotonic() + 20
        while True:
            text = self.ready_file.read_text() if self.ready_file.exists() else ""
            if len(text.splitlines()) >= lines and text.endswith("\n"):
                break
            if self.cli.proc.poll() is not None or time.monotonic() > deadline:
                self.cli.proc.kill()
                raise AssertionError(f"not ready: {self.cli.proc.communicate(timeout=10)}")
            time.sleep(0.02)
        self.events = [json.loads(line) for line in text.splitlines()]

    def api(self) -> tuple[str, int]:
        (event,) = [e for e in self.events if e.get("api") == "toxiproxy"]
        return parse_address(event["address"])

    def rule(self, name: str) -> tuple[str, int]:
        (event,) = [e for e in self.events if e.get("name") == name]
        return parse_address(event["address"])

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc) -> None:
        self.cli.__exit__(*exc)


def call(api: tuple[str, int], method: str, path: str, body=None,
         headers: dict | None = None) -> tuple[int, object]:
    """One request to the API: (status, parsed JSON body or text or None)."""
    conn = http.client.HTTPConnection(*api, timeout=10)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, data, {"User-Agent": "curl/8", **(headers or {})})
        res = conn.getresponse()
        raw = res.read()
        if not raw:
            return res.status, None
        if res.getheader("Content-Type", "").startswith("application/json"):
            return res.status, json.loads(raw)
        return res.status, raw.decode()
    finally:
        conn.close()


def round_trip(addr: tuple[str, int], payload: bytes = b"ping") -> float:
    """Seconds for ``payload`` to come back through an echo."""
    with socket.create_connection(addr, timeout=10) as s:
        start = time.monotonic()
        s.sendall(payload)
        assert recv_exactly(s, len(payload)) == payload
        return time.monotonic() - start


# ------------------------------------------------- Toxiproxy's own client


def test_toxiproxy_python_client_drives_proxies_and_toxics(tmp_path, echo_target):
    toxiproxy = pytest.importorskip("toxiproxy")
    with Forwarder(tmp_path, "--api", "127.0.0.1:0") as fwd:
        server = toxiproxy.Toxiproxy()
        server.update_api_consumer(*fwd.api())
        assert server.running()
        assert b"nettools" in server.version()
        assert server.proxies() == {}

        proxy = server.create(upstream=f"{LOCAL}:{echo_target.port}", name="echo")
        assert proxy.enabled is True and proxy.listen.startswith(f"{LOCAL}:")
        addr = parse_address(proxy.listen)
        assert round_trip(addr) < 5
        assert set(server.proxies()) == {"echo"}

        proxy.add_toxic(type="latency", attributes={"latency": 150})
        assert list(proxy.toxics()) == ["latency_downstream"]
        assert proxy.get_toxic("latency_downstream").attributes == {"latency": 150, "jitter": 0}
        assert round_trip(addr) >= 0.150
        proxy.destroy_toxic("latency_downstream")
        assert proxy.toxics() == {}

        with proxy.down():
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(addr, timeout=5)
        assert round_trip(addr) < 5  # enabled again, on the same address

        with pytest.raises(toxiproxy.exceptions.ProxyExists):
            server.create(upstream=f"{LOCAL}:{echo_target.port}", name="echo")

        populated = server.populate([{"name": "second", "upstream": f"{LOCAL}:{echo_target.port}",
                                      "listen": f"{LOCAL}:0"}])
        assert [p.name for p in populated] == ["second"]
        proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
        assert server.reset() is True
        assert proxy.toxics() == {}
        server.destroy_all()
        assert server.proxies() == {}
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(addr, timeout=5)
        code, _, err = fwd.cli.stop()
    assert code == 0, err


# ------------------------------------------------------------- raw HTTP


def test_raw_http_shapes_and_status_codes(tmp_path, echo_target):
    upstream = f"{LOCAL}:{echo_target.port}"
    with Forwarder(tmp_path, "--api", "127.0.0.1:0") as fwd:
        api = fwd.api()
        status, proxy = call(api, "POST", "/proxies",
                             {"name": "db", "listen": f"{LOCAL}:0", "upstream": upstream})
        assert status == 201
        assert proxy["name"] == "db" and proxy["upstream"] == upstream
        assert proxy["enabled"] is True and proxy["toxics"] == []
        assert not proxy["listen"].endswith(":0")  # the port it got

        assert call(api, "POST", "/proxies", {"name": "db", "upstream": upstream}) == (
            409, {"error": "proxy already exists", "status": 409})
        assert call(api, "POST", "/proxies", {"name": "x"}) == (
            400, {"error": "missing required field: upstream", "status": 400})
        assert call(api, "GET", "/proxies/nope") == (
            404, {"error": "proxy not found", "status": 404})
        assert call(api, "GET", "/proxies") == (200, {"db": proxy})

        status, toxic = call(api, "POST", "/proxies/db/toxics",
                             {"type": "latency", "stream": "upstream",
                              "attributes": {"latency": 50, "jitter": 5}})
        assert (status, toxic) == (200, {"name": "latency_upstream", "type": "latency",
                                         "stream": "upstream", "toxicity": 1.0,
                                         "attributes": {"latency": 50, "jitter": 5}})
        assert call(api, "POST", "/proxies/db/toxics", {"type": "latency",
                                                       "stream": "upstream"})[0] == 409
        assert call(api, "POST", "/proxies/db/toxics", {"type": "nope"}) == (
            400, {"error": "invalid toxic type", "status": 400})
        assert call(api, "POST", "/proxies/db/toxics",
                    {"type": "latency", "attributes": {"latency": "slow"}})[0] == 400
        assert call(api, "POST", "/proxies/db/toxics", {"type": "latency",
                                                       "stream": "sideways"})[0] == 400
        assert call(api, "GET", "/proxies/db/toxics/nope") == (
            404, {"error": "toxic not found", "status": 404})

        status, updated = call(api, "PATCH", "/proxies/db/toxics/latency_upstream",
                               {"attributes": {"latency": 80}})
        assert status == 200 and updated["attributes"] == {"latency": 80, "jitter": 5}
        assert call(api, "GET", "/proxies/db/toxics") == (200, [updated])
        assert round_trip(parse_address(proxy["listen"])) >= 0.080 - 0.005
        status, updated = call(api, "POST", "/proxies/db/toxics/latency_upstream",
                               {"attributes": {"jitter": 0}, "toxicity": 0.5})
        assert status == 200 and updated["attributes"] == {"latency": 80, "jitter": 0}
        assert updated["toxicity"] == 0.5
        assert call(api, "DELETE", "/proxies/db/toxics/latency_upstream") == (204, None)
        assert call(api, "GET", "/proxies/db/toxics") == (200, [])

        status, body = call(api, "POST", "/proxies/db", {"enabled": False})
        assert status == 200 and body["enabled"] is False
        assert call(api, "POST", "/reset") == (204, None)
        status, body = call(api, "GET", "/proxies/db")
        assert body["enabled"] is True and body["toxics"] == []

        status, body = call(api, "POST", "/populate", [
            {"name": "db", "listen": proxy["listen"], "upstream": upstream},
            {"name": "cache", "listen": f"{LOCAL}:0", "upstream": upstream},
        ])
        assert status == 201 and [p["name"] for p in body["proxies"]] == ["db", "cache"]
        assert body["proxies"][0]["listen"] == proxy["listen"]  # left alone
        assert call(api, "POST", "/populate", [{"name": "bad"}])[0] == 400

        status, moved = call(api, "POST", "/proxies/cache", {"listen": f"{LOCAL}:0"})
        cache = body["proxies"][1]
        assert status == 200 and moved["listen"] != cache["listen"]  # a new port
        assert round_trip(parse_address(moved["listen"])) < 5
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(parse_address(cache["listen"]), timeout=5)
        assert call(api, "DELETE", "/proxies/cache") == (204, None)
        assert call(api, "DELETE", "/proxies/cache")[0] == 404
        assert call(api, "DELETE", "/proxies/db/toxics/nope")[0] == 404
        status, version = call(api, "GET", "/version")
        assert status == 200 and version["version"].startswith("2.")
        assert call(api, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})[0] == 403
        assert call(api, "PUT", "/proxies")[0] == 405
        assert call(api, "GET", "/nowhere")[0] == 404
        assert call(api, "POST", "/proxies", headers={"Content-Type": "application/json"},
                    body=None)[0] == 400
        code, _, err = fwd.cli.stop()
    assert code == 0 and "Traceback" not in err


def test_static_toxics_from_the_command_line(tmp_path, echo_target):
    with Forwarder(tmp_path, f"slow=0:{echo_target.port}", f"fast=0:{echo_target.port}",
                   "--toxic", "latency:latency=120,rule=slow", "--api", "127.0.0.1:0",
                   lines=3) as fwd:
        assert round_trip(fwd.rule("slow")) >= 0.120
        status, toxics = call(fwd.api(), "GET", "/proxies/slow/toxics")
        assert [t["name"] for t in toxics] == ["latency_downstream"]
        assert call(fwd.api(), "GET", "/proxies/fast/toxics") == (200, [])
        fwd.cli.stop()


def test_a_bare_port_serves_the_api_on_loopback(tmp_path):
    with Forwarder(tmp_path, "--api", "0") as fwd:
        host, port = fwd.api()
        assert host == LOCAL and port != 0
        assert call((host, port), "GET", "/proxies") == (200, {})
        fwd.cli.stop()
