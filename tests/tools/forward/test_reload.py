"""``nettools forward --rules FILE`` and SIGHUP: new rules start, removed ones
stop accepting and drain, changed ones keep their live connections; a bad file
changes nothing."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
from pathlib import Path

import pytest
from helpers.cli import Cli, run_cli
from helpers.sockets import Target, parse_address, recv_exactly

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


def named(name: bytes):
    def handler(conn: socket.socket) -> None:
        conn.sendall(name)
        while data := conn.recv(65536):
            conn.sendall(data)

    return handler


def rules(*tables: tuple[str, int]) -> str:
    return "".join(f'[[rule]]\nname = "{name}"\nlisten = "127.0.0.1:0"\n'
                   f'target = "127.0.0.1:{port}"\n\n' for name, port in tables)


def wait_for(predicate, what: str, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def ready(ready_file: Path) -> dict[str, tuple[str, int]]:
    """Rule name -> address, from the ready lines so far."""
    if not ready_file.exists():
        return {}
    lines = [json.loads(x) for x in ready_file.read_text().splitlines() if x.endswith("}")]
    return {e["name"]: parse_address(e["address"]) for e in lines if "name" in e}


def reloads(ready_file: Path) -> list[dict]:
    """The ``reloaded`` events so far."""
    lines = [json.loads(x) for x in ready_file.read_text().splitlines() if x.endswith("}")]
    return [e for e in lines if e["event"] == "reloaded"]


def open_to(addr) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(addr, timeout=10)
    return s, recv_exactly(s, 1)


def echo(s: socket.socket, data: bytes) -> bytes:
    s.sendall(data)
    return recv_exactly(s, len(data))


def test_sighup_reloads_without_dropping_connections(tmp_path):
    t1, t2 = Target(named(b"1")), Target(named(b"2"))
    path = tmp_path / "rules.toml"
    path.write_text(rules(("a", t1.port), ("b", t1.port)))
    ready_file = tmp_path / "ready.jsonl"
    try:
        with Cli("forward", "--rules", str(path), "--ready-file", str(ready_file),
                 "--drain-timeout", "20s") as cli:
            before = wait_for(lambda: len(ready(ready_file)) == 2 and ready(ready_file),
                              "the ready lines")
            live_a, who = open_to(before["a"])
            assert who == b"1"
            live_b, who = open_to(before["b"])
            assert who == b"1"

            # a moves to target 2, b goes, c comes.
            path.write_text(rules(("a", t2.port), ("c", t1.port)))
            cli.proc.send_signal(signal.SIGHUP)
            after = wait_for(lambda: "c" in ready(ready_file) and ready(ready_file),
                             "the new rule's ready line")
            assert open_to(after["c"])[1] == b"1"
            # a: the same listener; the live connection stays on target 1,
            # new ones go to target 2.
            assert echo(live_a, b"still here") == b"still here"
            assert open_to(before["a"])[1] == b"2"
            # b: no longer accepting, but its live connection drains normally.
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(before["b"], timeout=5)
            assert echo(live_b, b"draining") == b"draining"
            live_b.close()

            assert reloads(ready_file) == [
                {"event": "reloaded", "service": "forward", "added": ["c"],
                 "removed": ["b"], "changed": ["a"], "failed": []}]

            # A broken file changes nothing.
            path.write_text("[[rule]\nname = ")
            cli.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: len(reloads(ready_file)) == 2, "the second reload")
            assert reloads(ready_file)[1]["failed"] == [str(path)]
            assert open_to(before["a"])[1] == b"2"
            assert open_to(after["c"])[1] == b"1"
            live_a.close()
            code, out, err = cli.stop()
        assert code == 0, err
        assert f"reload of {path} failed, rules unchanged" in err
        assert "1 added, 1 removed, 1 changed" in err
        assert "Traceback" not in err
    finally:
        t1.close()
        t2.close()


def test_a_bad_rules_file_at_start_is_a_usage_error_naming_the_line(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('rules = ["7000:22"]\n[[rule]]\nlisten = "0"\n')
    res = run_cli("forward", "--rules", str(path))
    assert res.returncode == 2
    assert f"{path}: rule 1: a rule needs listen and target" in res.stderr
    path.write_text('rules = ["7000:22"]\nname = = "x"\n')
    res = run_cli("forward", "--rules", str(path))
    assert res.returncode == 2 and f"{path}: " in res.stderr and "line 2" in res.stderr


def test_a_reload_replaces_the_files_toxics_and_keeps_those_set_through_the_api(tmp_path):
    target = Target(named(b"1"))
    path = tmp_path / "rules.toml"
    toxic = '[[rule.toxics]]\ntype = "{}"\nattributes = {{ {} }}\n'
    path.write_text(rules(("a", target.port)) + toxic.format("latency", "latency = 40"))
    ready_file = tmp_path / "ready.jsonl"

    def api_call(method: str, url: str, body: dict | None = None) -> tuple[int, object]:
        lines = [json.loads(x) for x in ready_file.read_text().splitlines() if x.endswith("}")]
        (api,) = [parse_address(e["address"]) for e in lines if e.get("api") == "toxiproxy"]
        conn = http.client.HTTPConnection(*api, timeout=10)
        try:
            conn.request(method, url, None if body is None else json.dumps(body))
            res = conn.getresponse()
            return res.status, json.loads(res.read() or b"null")
        finally:
            conn.close()

    def toxics() -> dict[str, dict]:
        status, listed = api_call("GET", "/proxies/a/toxics")
        assert status == 200
        return {t["name"]: t["attributes"] for t in listed}

    try:
        with Cli("forward", "--rules", str(path), "--api", "127.0.0.1:0",
                 "--ready-file", str(ready_file)) as cli:  # fmt: skip
            wait_for(lambda: "a" in ready(ready_file) and "toxiproxy" in ready_file.read_text(),
                     "the ready lines")  # fmt: skip
            assert toxics() == {"latency_downstream": {"latency": 40, "jitter": 0}}
            assert api_call("POST", "/proxies/a/toxics", {
                "name": "mine", "type": "slicer", "stream": "upstream",
                "attributes": {"average_size": 64}})[0] == 200  # fmt: skip
            live, _ = open_to(ready(ready_file)["a"])

            path.write_text(rules(("a", target.port)) + toxic.format("bandwidth", "rate = 900"))
            cli.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: reloads(ready_file), "the reload")
            assert reloads(ready_file)[0]["changed"] == ["a"]
            # The file's toxic replaced by its new one; the API's left as it was.
            assert toxics() == {
                "bandwidth_downstream": {"rate": 900},
                "mine": {"average_size": 64, "size_variation": 0, "delay": 0},
            }
            assert echo(live, b"through both") == b"through both"  # the live one goes on
            live.close()
            code, _, err = cli.stop()
        assert code == 0, err
    finally:
        target.close()
