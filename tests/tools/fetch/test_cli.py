"""``nettools fetch`` as a user runs it: a subprocess against a local WSGI site."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from helpers.cli import NO_PROXY, clean_env, interrupted_run, last_json, run_cli
from helpers.wsgi import Holder, ServerThread

import nettools

pytestmark = pytest.mark.timeout(60)

class Site:
    """Routes for the fetch tests; runs in the server thread's hub."""

    def __init__(self) -> None:
        self.holder = Holder(3)
        self.seen: list[tuple[str, str, dict]] = []
        self.fast_done = nettools.Event()
        self.together = 0
        self.together_event = nettools.Event()

    def __call__(self, env, start_response):
        path = env["PATH_INFO"]
        headers = {k[5:]: v for k, v in env.items() if k.startswith("HTTP_")}
        self.seen.append((env["REQUEST_METHOD"], path, headers))
        if path == "/missing":
            return self.reply(start_response, "404 Not Found", b"no such page")
        if path == "/moved":
            start_response(
                "301 Moved Permanently", [("Location", "/page"), ("Content-Length", "0")]
            )
            return [b""]
        if path == "/slow":
            # Answers only after /fast has been answered: completion order is fast, slow.
            with nettools.Timeout(10, False):
                self.fast_done.wait()
            nettools.sleep(0.2)
            return self.reply(start_response, "200 OK", b"slow")
        if path == "/fast":
            self.fast_done.send(True)
            return self.reply(start_response, "200 OK", b"fast")
        if path.startswith("/together/"):
            # Answered only once three of these are in flight at the same time.
            self.together += 1
            if self.together >= 3:
                self.together_event.send(True)
            with nettools.Timeout(10, False):
                self.together_event.wait()
            ok = self.together_event.ready()
            return self.reply(start_response, "200 OK" if ok else "504 Not Together", b"t")
        if path == "/big":
            return self.reply(start_response, "200 OK", b"b" * 100_000)
        if path.startswith("/hold/"):
            self.holder.hold()
        return self.reply(start_response, "200 OK", f"page {path}".encode())

    @staticmethod
    def reply(start_response, status, body):
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def site():
    app = Site()
    with ServerThread(app) as srv:
        app.url = srv.url
        yield app


def fetch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_cli("fetch", *args, env={**NO_PROXY, **(env or {})})


def fields(line: str) -> list[str]:
    return line.split()


def test_lines_in_input_order_with_status_size_time_and_final_url(site):
    res = fetch(f"{site.url}/a", f"{site.url}/moved", f"{site.url}/b")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [fields(line)[0] for line in lines] == ["200", "200", "200"]
    assert [fields(line)[3] for line in lines] == [
        f"{site.url}/a",
        f"{site.url}/page",
        f"{site.url}/b",
    ]
    assert fields(lines[0])[1] == str(len(b"page /a"))
    assert fields(lines[0])[2].endswith("s")
    summary = last_json(res.stderr)
    assert summary["event"] == "done" and summary["urls"] == 3 and summary["failed"] == 0


def test_exit_2_when_any_fetch_fails(site):
    res = fetch(f"{site.url}/a", f"{site.url}/missing")
    assert res.returncode == 2
    assert fields(res.stdout.splitlines()[1])[0] == "404"

    # A port that is bound but not listening: the connection is refused, whatever
    # else runs on this machine.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        res = fetch(f"{site.url}/a", f"http://127.0.0.1:{closed.getsockname()[1]}/")
    assert res.returncode == 2
    err_line = res.stdout.splitlines()[1]
    assert err_line.startswith("ERR") and "connect:" in err_line
    assert "Traceback" not in res.stderr


def test_json_objects(site):
    res = fetch("--json", f"{site.url}/moved", f"{site.url}/missing", "http://no-such.invalid/")
    assert res.returncode == 2
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["index"] for o in objs] == [0, 1, 2]
    assert objs[0]["status"] == 200 and objs[0]["ok"] is True
    assert objs[0]["redirects"] == [{"status": 301, "url": f"{site.url}/page"}]
    assert objs[1]["status"] == 404 and objs[1]["ok"] is False and objs[1]["kind"] == "http"
    assert objs[2]["status"] is None and objs[2]["kind"] == "dns"


def test_completion_order_on_request(site):
    urls = [f"{site.url}/slow", f"{site.url}/fast"]
    res = fetch("--order", "completion", *urls)
    assert res.returncode == 0, res.stderr
    assert [fields(line)[3] for line in res.stdout.splitlines()] == [urls[1], urls[0]]


def test_fetches_run_concurrently(site):
    urls = [f"{site.url}/together/{i}" for i in range(3)]
    res = fetch("--concurrency", "3", *urls)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [fields(line)[0] for line in res.stdout.splitlines()] == ["200"] * 3


def test_urls_from_stdin(site):
    text = f"# a comment\n{site.url}/one\n\n  {site.url}/two  \n"
    res = subprocess.run(
        [sys.executable, "-m", "nettools", "fetch", f"{site.url}/zero", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(NO_PROXY),
    )
    assert res.returncode == 0, res.stderr
    assert [fields(line)[3] for line in res.stdout.splitlines()] == [
        f"{site.url}/zero",
        f"{site.url}/one",
        f"{site.url}/two",
    ]


def test_output_dir_saves_bodies_under_safe_names(site, tmp_path):
    out = tmp_path / "bodies"
    res = fetch("-o", str(out), f"{site.url}/a/../../etc/passwd?x=1", f"{site.url}/.hidden")
    assert res.returncode == 0, res.stderr
    names = sorted(os.listdir(out))
    assert len(names) == 2
    for name in names:
        assert "/" not in name and not name.startswith(".")
        assert (out / name).resolve().parent == out.resolve()
    assert sorted((out / n).read_bytes() for n in names) == sorted(
        [b"page /etc/passwd", b"page /.hidden"]
    )


def test_header_and_head_method(site):
    res = fetch("-H", "X-Token: abc", "--method", "HEAD", f"{site.url}/h")
    assert res.returncode == 0, res.stderr
    method, path, headers = site.seen[-1]
    assert (method, path, headers["X_TOKEN"]) == ("HEAD", "/h", "abc")
    assert fields(res.stdout)[1] == "0"


def test_max_body_marks_truncation(site):
    res = fetch("--max-body", "1K", f"{site.url}/big")
    assert res.returncode == 0, res.stderr
    assert fields(res.stdout)[1] == "1024+"
    res = fetch("--json", "--max-body", "1K", f"{site.url}/big")
    obj = json.loads(res.stdout)
    assert obj["truncated"] is True and obj["size"] == 1024


def test_options_from_environment(site):
    res = fetch(f"{site.url}/e", env={"NETTOOLS_METHOD": "HEAD", "NETTOOLS_JSON": "1"})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["size"] == 0
    assert site.seen[-1][0] == "HEAD"


@pytest.mark.parametrize(
    "args",
    [
        ["-H", "no colon here", "http://127.0.0.1/"],
        ["--timeout", "soon", "http://127.0.0.1/"],
        ["--method", "DELETE", "http://127.0.0.1/"],
        ["--concurrency", "0", "http://127.0.0.1/"],
        [],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args):
    res = fetch(*args)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stdout == ""


def test_runtime_error_exits_1(site, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = fetch("-o", str(blocker / "sub"), f"{site.url}/a")
    assert res.returncode == 1
    assert res.stderr.startswith("nettools fetch: ")
    assert len(res.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ SIGINT


@pytest.mark.timeout(40)
def test_sigint_prints_what_was_fetched_in_input_order_and_exits_2_after_a_failure(site):
    # Concurrency 3: /page/1 and /missing finish, then three holds fill the
    # pool and /page/5 never starts.
    paths = ["/page/1", "/hold/1", "/missing", "/hold/2", "/hold/3", "/page/5"]
    code, out, err = interrupted_run(
        site.holder, "fetch", "--concurrency", "3", *[site.url + p for p in paths], env=NO_PROXY
    )
    assert code == 2, err
    lines = out.splitlines()
    assert len(lines) == len(paths), out
    assert fields(lines[0])[0] == "200" and lines[0].endswith("/page/1")
    assert fields(lines[2])[0] == "404" and lines[2].endswith("/missing")
    for i in (1, 3, 4, 5):
        assert lines[i].startswith("ERR"), lines[i]
        assert f"{site.url}{paths[i]}  (interrupted: not fetched)" in lines[i]
    summary = last_json(err)
    assert summary["interrupted"] is True
    counts = (summary["urls"], summary["ok"], summary["failed"], summary["not_fetched"])
    assert counts == (6, 1, 1, 4)


@pytest.mark.timeout(40)
def test_sigint_in_completion_order_json_exits_1_without_failures(site):
    paths = ["/page/1", "/hold/1", "/page/2", "/hold/2", "/hold/3", "/page/5"]
    code, out, err = interrupted_run(
        site.holder, "fetch", "--json", "--order", "completion", "--concurrency", "3",
        *[site.url + p for p in paths], env=NO_PROXY,
    )  # fmt: skip
    assert code == 1, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert sorted(o["index"] for o in objs[:2]) == [0, 2]
    assert all(o["ok"] and o["status"] == 200 for o in objs[:2])
    # The not fetched come last, in input order.
    assert [o["index"] for o in objs[2:]] == [1, 3, 4, 5]
    assert all(o["kind"] == "interrupted" and o["status"] is None for o in objs[2:])
    summary = last_json(err)
    assert summary["interrupted"] is True and summary["failed"] == 0
