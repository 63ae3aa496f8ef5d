"""Sites and links that cannot be reached, as a user meets them on the command line.

A start URL that gets no HTTP answer (refused, no address, TLS failure, timeout) is a
runtime error: exit 1 and one line.  A name that cannot be resolved is one
whose first label is longer than DNS allows (64 characters): the resolver
refuses it before building a query, so no look-up leaves the machine.

Dead links to outside hosts cost about one request per host, not four per link:
a refused connection or a name that does not resolve settles every link to that
host, only timeouts are tried again, and a GET follows a HEAD only when the
HEAD says the server does not do HEAD.  The outside hosts are reached through a
proxy on a closed loopback port (``http_proxy``), so no name is ever looked up
and nothing leaves the machine."""

from __future__ import annotations

import json
import socket
from collections import Counter

import pytest
from helpers.cli import run_cli
from helpers.crawl_site import External, Pages, Recorder, closed_port, serve, via_closed_proxy
from helpers.tls import Certs
from helpers.wsgi import ServerThread

pytestmark = pytest.mark.timeout(60)


def silent_port() -> socket.socket:
    """A port that accepts connections (the kernel does, from its backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def unresolvable(n: int = 0) -> str:
    """A host name that fails to resolve without a query being sent (a 64-character label)."""
    return f"{n}".rjust(64, "x") + ".example"


def rows(stdout: str) -> dict[str, dict]:
    return {r["url"]: r for r in map(json.loads, stdout.splitlines())}


def test_a_site_that_refuses_connections_is_exit_1_in_one_line(tmp_path):
    report = tmp_path / "links.xml"
    with closed_port() as closed:
        port = closed.getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
        proc = run_cli("crawl", url, "--format", "junit", "-o", str(report))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (f"nettools crawl: cannot reach the site: {url}: connect: cannot "
                           f"connect to 127.0.0.1:{port}: connection refused\n")
    assert proc.stdout == ""
    assert not report.exists()  # no report of a crawl that never started


def test_a_site_whose_tls_fails_is_exit_1_in_one_line():
    with ServerThread(lambda env, start: [b""], ssl_context=Certs().server_context()) as srv:
        url = f"https://127.0.0.1:{srv.port}/"
        proc = run_cli("crawl", url)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"nettools crawl: cannot reach the site: {url}: tls: ")
    assert len(proc.stderr.splitlines()) == 1


def test_a_site_whose_name_does_not_resolve_is_exit_1_in_one_line(tmp_path):
    url = f"http://{unresolvable()}/"
    proc = run_cli("crawl", url, "--check-links", "-o", str(tmp_path / "links.txt"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"nettools crawl: cannot reach the site: {url}: dns: ")
    assert len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "links.txt").exists()


def test_a_site_that_never_answers_is_exit_1_after_its_retries():
    with silent_port() as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        proc = run_cli("crawl", url, "--timeout", "300ms", "--retries", "1", "--ignore-robots")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"nettools crawl: cannot reach the site: {url}: timeout: ")
    assert len(proc.stderr.splitlines()) == 1


def test_one_unreachable_start_url_among_others_is_a_broken_link():
    site = Pages({"/": (["/a.html"], 0), "/a.html": ([], 0)})
    with serve(site) as srv, closed_port() as closed:
        base, dead = srv.url, f"http://127.0.0.1:{closed.getsockname()[1]}/"
        proc = run_cli("crawl", base + "/", dead, "--format", "jsonl")
    assert proc.returncode == 2, proc.stderr
    found = rows(proc.stdout)
    assert found[dead]["reason"].startswith("connect: ")
    assert found[base + "/a.html"]["ok"] is True


DEAD_HOSTS = 7
LINKS_PER_HOST = 9


def test_dead_outside_hosts_cost_one_request_each(state):
    # Each page links to every dead host, with a different path per page.
    pages = {"/": ([f"/{n}.html" for n in range(LINKS_PER_HOST)], 0)}
    for n in range(LINKS_PER_HOST):
        links = [f"http://dead-{h}.example/{n}.html" for h in range(DEAD_HOSTS)]
        pages[f"/{n}.html"] = (links + ["https://dead-0.example/secure"], 0)
    site = Pages(pages)
    with serve(site) as srv, closed_port() as closed:
        port = closed.getsockname()[1]
        proc = run_cli("crawl", *state, srv.url + "/", "--check-links", "--format", "jsonl",
                       env=via_closed_proxy(port))  # fmt: skip
        summary = json.loads(proc.stderr.splitlines()[-1])
    assert proc.returncode == 2, proc.stderr
    dead = {u: r for u, r in rows(proc.stdout).items() if ".example/" in u}
    assert len(dead) == DEAD_HOSTS * LINKS_PER_HOST + 1
    reason = f"connect: cannot connect to proxy 127.0.0.1:{port}: connection refused"
    assert {r["reason"] for r in dead.values()} == {reason}
    # One request per host (http and https of a host are one host), the rest settled with it.
    attempts = Counter(r["attempts"] for r in dead.values())
    assert attempts == {1: DEAD_HOSTS, 0: len(dead) - DEAD_HOSTS}
    assert {r["method"] for r in dead.values()} == {"HEAD"}
    inside = sum(site.counts.values())
    assert summary["requests"] == inside + DEAD_HOSTS


def test_an_outside_host_whose_name_does_not_resolve_costs_one_lookup(state):
    hosts = [unresolvable(h) for h in range(3)]
    links = [f"http://{host}/{n}.html" for host in hosts for n in range(LINKS_PER_HOST)]
    site = Pages({"/": (links, 0)})
    with serve(site) as srv:
        proc = run_cli("crawl", *state, srv.url + "/", "--check-links", "--format", "jsonl",
                       "--retries", "2")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    dead = {u: r for u, r in rows(proc.stdout).items() if ".example/" in u}
    assert len(dead) == len(links)
    assert all(r["reason"].startswith("dns: ") for r in dead.values())
    # Not retried, not tried with GET: one request per host, the other links settled with it.
    assert Counter(r["attempts"] for r in dead.values()) == {1: 3, 0: len(links) - 3}
    summary = json.loads(proc.stderr.splitlines()[-1])
    assert summary["requests"] == sum(site.counts.values()) + len(hosts)


def test_a_host_that_never_answers_is_given_up_after_one_links_retries(state):
    with silent_port() as silent:
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        site = Pages({"/": ([f"http://{host}/{n}" for n in range(5)], 0)})
        with serve(site) as srv:
            proc = run_cli("crawl", *state, srv.url + "/", "--check-links", "--format", "jsonl",
                           "--timeout", "300ms", "--retries", "2")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    silent_rows = [r for u, r in rows(proc.stdout).items() if u.startswith(f"http://{host}/")]
    assert len(silent_rows) == 5
    assert all(r["reason"].startswith("timeout: ") for r in silent_rows)
    # Timeouts are tried again (the first link: 3 attempts); then the host is settled.
    assert sorted(r["attempts"] for r in silent_rows) == [0, 0, 0, 0, 3]


def test_head_is_the_answer_unless_the_server_does_not_do_head(state):
    ext = External()
    with serve(ext) as ext_srv:
        ext_url = ext_srv.url
        links = [ext_url + p for p in ("/ok.html", "/gone.html", "/nohead.html")]
        site = Pages({"/": (links, 0)})
        with serve(site) as srv:
            proc = run_cli("crawl", *state, srv.url + "/", "--check-links", "--format", "jsonl")
    assert proc.returncode == 2, proc.stderr
    assert ext.counts == Counter({("HEAD", "/ok.html"): 1, ("HEAD", "/gone.html"): 1,
                                  ("HEAD", "/nohead.html"): 1, ("GET", "/nohead.html"): 1})
    found = rows(proc.stdout)
    assert found[ext_url + "/gone.html"]["reason"] == "HTTP 404"
    assert found[ext_url + "/nohead.html"]["status"] == 200


class Statuses(Recorder):
    """``/STATUS`` answers STATUS (``/503`` only the first time, with Retry-After: 0);
    ``/`` links to each, on this host and (for --check-links) as seen from outside."""

    PATHS = ("/500", "/502", "/404", "/503", "/429")

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        host = self.enter(environ)
        try:
            path = environ["PATH_INFO"]
            if path == "/":
                body = "".join(f'<a href="{p}">{p}</a>' for p in self.PATHS)
                start_response("200 OK", [("Content-Type", "text/html")])
                return [body.encode()]
            with self.lock:
                again = self.counts[(environ["REQUEST_METHOD"], path)] > 1
            if path in ("/503", "/429") and again:
                start_response("200 OK", [("Content-Type", "text/html")])
                return [b"fine now"]
            status = {"/500": "500 Internal Server Error", "/502": "502 Bad Gateway",
                      "/404": "404 Not Found", "/503": "503 Service Unavailable",
                      "/429": "429 Too Many Requests"}.get(path, "404 Not Found")  # fmt: skip
            start_response(status, [("Content-Type", "text/plain"), ("Retry-After", "0")])
            return [b"no"]
        finally:
            self.leave(host, environ.get("PATH_INFO", ""))


def test_only_what_can_succeed_on_another_try_is_tried_again(state):
    site = Statuses()
    with serve(site) as srv:
        base = srv.url
        proc = run_cli("crawl", *state, base + "/", "--retries", "2", "--ignore-robots",
                       "--format", "jsonl")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert site.counts == Counter({("GET", "/"): 1, ("GET", "/500"): 1, ("GET", "/502"): 1,
                                   ("GET", "/404"): 1, ("GET", "/503"): 2,
                                   ("GET", "/429"): 2})  # fmt: skip
    found = rows(proc.stdout)
    assert {u[len(base):]: r["ok"] for u, r in found.items()} == {
        "/": True, "/500": False, "/502": False, "/404": False, "/503": True, "/429": True}
