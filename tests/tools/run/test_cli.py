"""``nettools run FILE`` through the real entry point: every type of service in one
process, ready lines, summaries, reload on SIGHUP, failures and bad files."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
import zmq
from helpers.cli import NO_PROXY, clean_env, run_cli
from helpers.events import Events
from helpers.sockets import Target, echo_handler, echo_through, parse_address, recv_exactly
from helpers.zmq import control
from websockets.sync.client import connect as ws_connect

pytestmark = pytest.mark.timeout(90)

LOCAL = "127.0.0.1"


class Run:
    """``nettools run FILE`` in a subprocess, its stdout and stderr read as events."""

    def __init__(self, file: Path, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nettools", "run", str(file), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=clean_env(NO_PROXY), cwd=cwd,
        )  # fmt: skip
        self.out = Events(self.proc.stdout)
        self.err = Events(self.proc.stderr)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def ready(self) -> tuple[list[dict], dict]:
        """The listening lines and the ready line that follows them."""
        events = self.out.until(lambda e: e["event"] == "ready")
        return events[:-1], events[-1]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> tuple[int, list[dict]]:
        """SIGTERM; the exit status and what it printed on stderr after."""
        self.signal(signal.SIGTERM)
        code = self.proc.wait(30)
        return code, self.err.rest()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def http_get(address: str, path: str = "/") -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{address}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def echo_once(address: str, data: bytes = b"ping\n") -> bytes:
    with socket.create_connection(parse_address(address), timeout=10) as sock:
        sock.sendall(data)
        return recv_exactly(sock, len(data))


# ------------------------------------------------------------------ every type


APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from the app"]
'''


def test_every_type_of_service_runs_in_one_process(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>site</h1>")
    (tmp_path / "runapp.py").write_text(APP)
    target = Target(echo_handler)
    file = write(tmp_path / "all.toml", f"""
        [services.echo]
        type = "echo"
        raw = true
        [services.chat]
        type = "chat"
        [services.wschat]
        type = "wschat"
        [services.db]
        type = "forward"
        rules = ["0:{LOCAL}:{target.port}", "0:{LOCAL}:{target.port}"]
        [services.app]
        type = "serve"
        app = "runapp:app"
        patch = false
        [services.site]
        type = "static"
        root = "site"
        [services.feeds]
        type = "feeds"
        [services.proxy]
        type = "zmq-proxy"
        proxy-type = "forwarder"
        frontend = "tcp://{LOCAL}:0"
        backend = "tcp://{LOCAL}:0"
        control = "tcp://{LOCAL}:0"
        [services.lines]
        type = "zmq-tcp"
        sub = "tcp://{LOCAL}:0"
        [services.ws]
        type = "zmq-ws"
        sub = "tcp://{LOCAL}:0"
    """)
    ctx = zmq.Context()
    try:
        with Run(file) as run:
            listening, ready = run.ready()
            services = ready["services"]
            assert list(services) == ["echo", "chat", "wschat", "db", "app", "site", "feeds",
                                      "proxy", "lines", "ws"]  # fmt: skip
            assert [e["name"] for e in listening] == ["echo", "chat", "wschat", "db", "db", "app",
                                                      "site", "feeds", "proxy", "lines", "ws"]
            for event in listening:
                assert event["event"] == "listening"
                assert event["service"] == services[event["name"]]["service"]
                assert not event["address"].endswith(":0")  # port 0 resolved
            assert len(services["db"]["listeners"]) == 2

            assert echo_once(services["echo"]["address"]) == b"ping\n"
            for listener in services["db"]["listeners"]:
                assert listener["target"] == f"{LOCAL}:{target.port}"
                assert echo_through(parse_address(listener["address"]), b"via db") == b"via db"
            assert http_get(services["site"]["address"]) == (200, b"<h1>site</h1>")
            assert http_get(services["app"]["address"]) == (200, b"hello from the app")
            assert http_get(services["wschat"]["address"], "/healthz")[0] == 200
            assert b"POST / with feed URLs" in http_get(services["feeds"]["address"])[1]
            with socket.create_connection(parse_address(services["chat"]["address"]),
                                          timeout=10) as chat:  # fmt: skip
                assert b"nick" in chat.recv(1024).lower()

            proxy = services["proxy"]["listeners"][0]
            stats = json.loads(control(ctx, proxy["control"], "STATISTICS"))
            assert stats["frontend_to_backend"]["messages"] == 0

            lines = services["lines"]["listeners"][0]
            pub = ctx.socket(zmq.PUB)
            pub.linger = 0
            pub.connect(lines["sub"])
            with socket.create_connection(parse_address(lines["address"]), timeout=10) as tcp:
                tcp.settimeout(0.02)

                def publish() -> None:
                    pub.send_multipart([b"news", b"hello"])

                assert _first_line(publish, tcp) == b"news hello\n"
            pub.close()

            ws = services["ws"]["listeners"][0]
            with ws_connect(f"ws://{ws['address']}/", open_timeout=10) as client:
                client.send(json.dumps({"subscribe": "t"}))
                assert json.loads(client.recv(10)) == {"subscribed": "t"}

            code, events = run.stop()
    finally:
        ctx.destroy(0)
        target.close()
    assert code == 0
    summaries = [e for e in events if e["event"] == "stopped"]
    assert [e["name"] for e in summaries] == list(services)
    assert all(e["service"] == services[e["name"]]["service"] for e in summaries)
    by_name = {e["name"]: e for e in summaries}
    assert by_name["echo"]["bytes_in"] == 5 and by_name["db"]["connections"] == 2
    assert by_name["site"]["requests"] == 1 and by_name["app"]["connections"] == 1


def _first_line(send, sock: socket.socket) -> bytes:
    """Publish until the bridge's TCP client gets a line (subscriptions take a moment)."""
    buf = b""
    for _ in range(500):
        send()
        try:
            buf += sock.recv(4096)
        except TimeoutError:
            continue
        if b"\n" in buf:
            return buf[: buf.index(b"\n") + 1]
    raise AssertionError("no line came through the bridge")


# ------------------------------------------------------------------ reload


def test_sighup_keeps_unchanged_services_and_their_connections(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.html").write_text(f"root {name}")
    ready_file = tmp_path / "ready.json"
    file = write(tmp_path / "run.toml", """
        [services.keep]
        type = "echo"
        raw = true
        [services.gone]
        type = "echo"
        raw = true
        [services.site]
        type = "static"
        root = "a"
    """)
    with Run(file, "--ready-file", str(ready_file)) as run:
        _, ready = run.ready()
        first = ready["services"]
        assert json.loads(ready_file.read_text())["services"] == first
        keep = socket.create_connection(parse_address(first["keep"]["address"]), timeout=10)
        keep.sendall(b"before\n")
        assert recv_exactly(keep, 7) == b"before\n"

        write(file, """
            [services.site]
            type = "static"
            root = "b"
            [services.keep]
            type = "echo"
            raw = true
            [services.new]
            type = "static"
            root = "c"
        """)
        run.signal(signal.SIGHUP)
        events = run.err.until(lambda e: e["event"] == "reloaded")
        reloaded = events[-1]
        assert reloaded["kept"] == ["keep"] and reloaded["stopped"] == ["gone"]
        assert reloaded["restarted"] == ["site"] and reloaded["started"] == ["new"]
        assert {e["name"] for e in events if e["event"] == "stopped"} == {"gone", "site"}
        listening, again = run.ready()
        assert [e["name"] for e in listening] == ["site", "new"]
        second = again["services"]
        assert again["reload"] == 1 and list(second) == ["site", "keep", "new"]
        assert json.loads(ready_file.read_text()) == again

        # The kept service never noticed: same port, same connection.
        assert second["keep"]["address"] == first["keep"]["address"]
        keep.sendall(b"after\n")
        assert recv_exactly(keep, 6) == b"after\n"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(parse_address(first["gone"]["address"]), timeout=10)
        assert http_get(second["site"]["address"]) == (200, b"root b")
        assert http_get(second["new"]["address"]) == (200, b"root c")

        # A file that does not check out changes nothing.
        file.write_text('[services.keep]\ntype = "echo"\nraw = maybe\n')
        run.signal(signal.SIGHUP)
        failed = run.err.next()
        assert failed["event"] == "reload-failed" and "run.toml:3: invalid TOML" in failed["error"]
        keep.sendall(b"still\n")
        assert recv_exactly(keep, 6) == b"still\n"
        assert http_get(second["new"]["address"]) == (200, b"root c")
        keep.close()
        code, rest = run.stop()
    assert code == 0
    summaries = {e["name"]: e for e in rest if e["event"] == "stopped"}
    assert list(summaries) == ["site", "keep", "new"]
    assert summaries["keep"]["connections"] == 1 and summaries["keep"]["bytes_in"] == 19


def test_a_service_that_fails_on_reload_is_reported_and_the_rest_go_on(tmp_path):
    with socket.socket() as taken:
        taken.bind((LOCAL, 0))
        taken.listen()
        busy = f"{LOCAL}:{taken.getsockname()[1]}"
        file = write(tmp_path / "run.toml", '[services.a]\ntype = "echo"\n')
        with Run(file) as run:
            _, ready = run.ready()
            write(file, f"""
                [services.a]
                type = "echo"
                [services.b]
                type = "echo"
                listen = "{busy}"
                [services.c]
                type = "echo"
            """)
            run.signal(signal.SIGHUP)
            events = run.err.until(lambda e: e["event"] == "reloaded")
            assert events[0] == {"event": "failed", "service": "echo", "name": "b",
                                 "error": f"cannot listen on {busy}: address already in use"}
            assert events[-1]["failed"] == {"b": events[0]["error"]}
            assert events[-1]["started"] == ["c"]
            _, again = run.ready()
            assert list(again["services"]) == ["a", "c"]
            assert echo_once(again["services"]["c"]["address"]) == b"ping\n"
            assert run.stop()[0] == 0


# ------------------------------------------------------------------ signals and ends


def test_sigusr1_prints_every_services_counts(tmp_path):
    file = write(tmp_path / "run.toml", """
        [services.one]
        type = "echo"
        [services.two]
        type = "echo"
    """)
    with Run(file) as run:
        _, ready = run.ready()
        echo_once(ready["services"]["two"]["address"])
        run.signal(signal.SIGUSR1)
        stats = [run.err.next(), run.err.next()]
        assert [(e["event"], e["name"]) for e in stats] == [("stats", "one"), ("stats", "two")]
        assert stats[1]["bytes_in"] == 5 and stats[0]["bytes_in"] == 0
        assert run.stop()[0] == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_lets_each_service_drain_its_own_way(tmp_path, stop_signal):
    file = write(tmp_path / "run.toml", """
        [services.chat]
        type = "chat"
        [services.echo]
        type = "echo"
    """)
    with Run(file) as run:
        _, ready = run.ready()
        chat = socket.create_connection(parse_address(ready["services"]["chat"]["address"]),
                                        timeout=10)  # fmt: skip
        chat.sendall(b"ada\n")
        heard = b""
        while b"lobby" not in heard:  # the welcome, once the nickname is taken
            heard += chat.recv(4096)
        run.signal(stop_signal)
        rest = b""
        while chunk := chat.recv(4096):  # the server says goodbye, then closes
            rest += chunk
        chat.close()
        assert b"*** Server is shutting down" in rest
        assert run.proc.wait(30) == 0
    summaries = [e for e in run.err.rest() if e["event"] == "stopped"]
    assert [(e["name"], e["connections"]) for e in summaries] == [("chat", 1), ("echo", 0)]


def test_a_proxy_told_to_terminate_ends_and_the_run_ends_with_its_last_service(tmp_path):
    file = write(tmp_path / "run.toml", f"""
        [services.q]
        type = "zmq-proxy"
        proxy-type = "queue"
        frontend = "tcp://{LOCAL}:0"
        backend = "tcp://{LOCAL}:0"
        control = "tcp://{LOCAL}:0"
        [services.e]
        type = "echo"
    """)
    ctx = zmq.Context()
    try:
        with Run(file) as run:
            _, ready = run.ready()
            endpoint = ready["services"]["q"]["listeners"][0]["control"]
            assert control(ctx, endpoint, "TERMINATE") == "OK"
            ended = run.err.next()
            assert (ended["event"], ended["name"]) == ("stopped", "q")
            assert echo_once(ready["services"]["e"]["address"]) == b"ping\n"
            code, rest = run.stop()
            assert code == 0 and [e["name"] for e in rest] == ["e"]
        write(file, f"""
            [services.q]
            type = "zmq-proxy"
            proxy-type = "streamer"
            frontend = "tcp://{LOCAL}:0"
            backend = "tcp://{LOCAL}:0"
            control = "tcp://{LOCAL}:0"
        """)
        with Run(file) as run:
            _, ready = run.ready()
            assert control(ctx, ready["services"]["q"]["listeners"][0]["control"],
                           "TERMINATE") == "OK"  # fmt: skip
            assert run.proc.wait(20) == 0
            assert [e["event"] for e in run.err.rest()] == ["stopped"]
    finally:
        ctx.destroy(0)


# ------------------------------------------------------------------ failures


def test_a_service_that_cannot_start_stops_the_others_and_exits_1(tmp_path):
    sock_path = tmp_path / "first.sock"
    with socket.socket() as taken:
        taken.bind((LOCAL, 0))
        taken.listen()
        busy = f"{LOCAL}:{taken.getsockname()[1]}"
        file = write(tmp_path / "run.toml", f"""
            [services.first]
            type = "echo"
            listen = "unix:{sock_path}"
            [services.second]
            type = "static"
            root = "."
            listen = "{busy}"
        """)
        res = run_cli("run", str(file))
    assert res.returncode == 1
    assert res.stdout == ""  # nothing was announced
    assert res.stderr.strip() == (f"nettools run: service 'second' (static) failed to start: "
                                  f"cannot listen on {busy}: address already in use")
    assert not sock_path.exists()  # the first one was started, then stopped and cleaned up


def test_settings_that_fail_at_start_are_a_usage_error(tmp_path):
    file = write(tmp_path / "run.toml", """
        [services.c]
        type = "chat"
        bus = "tcp://127.0.0.1:1,tcp://127.0.0.1:2"
        bus-heartbeat = "10s"
        bus-expiry = "5s"
    """)
    res = run_cli("run", str(file))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "service 'c' (chat) failed to start: the bus expiry must be longer" in res.stderr


@pytest.mark.parametrize(("text", "where", "message"), [
    ('[services.e]\ntype = "echo"\nmax-conns = "many"\n', ":3:", "expected a whole number"),
    ('[services.db]\ntype = "forward"\nrules = ["0:22"]\ntoxics = ["nosuch"]\n', ":4:",
     "invalid toxic type"),
    ("[services.e\n", ":1:", "invalid TOML"),
])  # fmt: skip
def test_a_bad_file_is_one_line_with_its_line_and_exit_2(tmp_path, text, where, message):
    file = tmp_path / "bad.toml"
    file.write_text(text)
    res = run_cli("run", str(file))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(f"nettools run: {file}{where} ") and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""


def test_check_reads_the_file_and_starts_nothing(tmp_path):
    with socket.socket() as taken:  # a busy port does not matter to a check
        taken.bind((LOCAL, 0))
        taken.listen()
        file = write(tmp_path / "run.toml", f"""
            [services.e]
            type = "echo"
            listen = "{LOCAL}:{taken.getsockname()[1]}"
        """)
        res = run_cli("run", str(file), "--check")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"event": "checked", "file": str(file),
                                      "services": {"e": "echo"}}
    missing = run_cli("run", str(tmp_path / "nope.toml"), "--check")
    assert missing.returncode == 2 and "No such file or directory" in missing.stderr


def test_a_forward_service_with_toxics_and_the_toxiproxy_api(tmp_path):
    file = write(tmp_path / "faults.toml", """
        [services.chaos]
        type = "forward"
        rules = ["db=0:127.0.0.1:{port}"]
        toxics = [{ type = "latency", attributes = { latency = 150 } }]
        api = "127.0.0.1:0"
    """)
    with Run(write(tmp_path / "echo.toml", '[services.echo]\ntype = "echo"\n')) as echo:
        (line,), _ = echo.ready()
        port = parse_address(line["address"])[1]
        file.write_text(file.read_text().replace("{port}", str(port)))
        with Run(file) as run:
            lines, _ = run.ready()
            rule = next(e for e in lines if e.get("rule") == "db")
            api = next(e for e in lines if e.get("api") == "toxiproxy")
            start = time.monotonic()
            assert echo_once(rule["address"]) == b"ping\n"
            assert time.monotonic() - start >= 0.150  # the file's toxic applies
            status, body = http_get(api["address"], "/proxies/db/toxics")
            assert status == 200 and json.loads(body)[0]["attributes"]["latency"] == 150
            code, _ = run.stop()
            assert code == 0
        echo.stop()
