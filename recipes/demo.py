"""What ``make demo`` runs: the kernel, then the ready-made servers, on loopback.

1. The green kernel (recipes/kernel_demo.py): pools, piles, queues, timeouts.
2. ``nettools echo``, ``nettools chat`` and ``nettools forward`` started as real
   commands on port 0, each announcing itself with its JSON ready line; a few
   hundred green clients drive them; SIGTERM stops each and its JSON summary
   is printed.
3. ``nettools run``: a site, a backend and a forwarder in front of it from one
   TOML file, in one process; a service added with SIGHUP while a connection
   stays open; one summary per service at the end.
4. ``nettools crawl --check-links`` on a small site served by ``nettools static``
   with one broken link, as a CI job would run it: the broken link, who links
   to it, and exit status 2.

Run it:  python recipes/demo.py
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nettools
from nettools.green import socket

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernel_demo  # noqa: E402 - the recipe next to this one


def start(*args: str) -> tuple[subprocess.Popen, tuple[str, int]]:
    """Start ``nettools ARGS`` and wait for its ready line; returns (process, address)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nettools", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = json.loads(proc.stdout.readline())
    host, port = ready["address"].rsplit(":", 1)
    print(f"  started: nettools {' '.join(args)} -> {ready['address']}")
    return proc, (host, int(port))


def stop(proc: subprocess.Popen) -> dict[str, Any]:
    """SIGTERM, then the one-line JSON summary the server prints on stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    summary = json.loads(err.strip().splitlines()[-1])
    return {k: summary[k] for k in ("connections", "bytes_in", "bytes_out", "errors")}


def echo_clients(addr: tuple[str, int], clients: int, lines: int) -> int:
    def client(n: int) -> int:
        with socket.create_connection(addr) as s:
            f = s.makefile("rwb")
            for i in range(lines):
                f.write(b"client %d line %d\n" % (n, i))
                f.flush()
                assert f.readline() == b"client %d line %d\n" % (n, i)
        return lines

    return sum(nettools.GreenPool(clients).imap(client, range(clients)))


def chat_session(addr: tuple[str, int]) -> list[str]:
    def join(nick: str) -> Any:
        s = socket.create_connection(addr)
        f = s.makefile("rwb")
        f.readline()  # the nickname prompt
        f.write(nick.encode() + b"\n")
        f.flush()
        return s, f

    users = [join(nick) for nick in ("ada", "bob", "cyd")]
    _, ada = users[0]
    ada.write(b"hello from ada\n")
    ada.flush()
    seen = []
    for _, f in users[1:]:
        for _ in range(20):  # skip the join notices until the message arrives
            line = f.readline().decode().strip()
            if "hello from ada" in line:
                seen.append(line)
                break
    for s, f in users:
        f.write(b"/quit\n")
        f.flush()
        s.close()
    return seen


def link_check() -> None:
    """Serve a 30-page site with one broken link and check it as CI would."""
    with tempfile.TemporaryDirectory() as root:
        for i in range(30):
            links = "".join(f'<a href="page{j}.html">{j}</a> ' for j in (i + 1, i + 2) if j < 30)
            if i == 7:
                links += '<a href="missing.html">gone</a>'
            Path(root, f"page{i}.html").write_text(f"<html><body>{links}</body></html>")
        Path(root, "index.html").write_text('<a href="page0.html">start</a>')
        site, (host, port) = start("static", root)
        try:
            url = f"http://{host}:{port}/"
            crawl = ["crawl", url, "--check-links", "--format", "json"]
            res = subprocess.run([sys.executable, "-m", "nettools", *crawl],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        finally:
            stop(site)
    report = json.loads(res.stdout)
    print(f"  crawl {url}: {report['summary']['pages']} pages, exit status {res.returncode}")
    for link in report["broken"]:
        print(f"    broken: {link['url']} ({link['status']}), linked from {link['referrers']}")


RUN_FILE = """\
[services.site]
type = "static"
root = "site"

[services.backend]
type = "echo"
listen = "unix:backend.sock"

[services.db]
type = "forward"
rules = ["0:unix:backend.sock"]
"""


def run_file() -> None:
    """Several services from one file, a reload that keeps a connection, the summaries."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, "site").mkdir()
        Path(work, "site", "index.html").write_text("<h1>from nettools run</h1>")
        Path(work, "fixtures.toml").write_text(RUN_FILE)
        proc = subprocess.Popen([sys.executable, "-m", "nettools", "-q", "run", "fixtures.toml"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=work)  # fmt: skip
        try:
            ready = next_event(proc.stdout, "ready")
            for name, svc in ready["services"].items():
                print(f"  {name} ({svc['service']}): {svc['address']}")
            host, port = ready["services"]["site"]["address"].rsplit(":", 1)
            with socket.create_connection((host, int(port))) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                page = s.makefile("rb").read()
            head, _, body = page.partition(b"\r\n\r\n")
            print(f"  GET / on the site: {head.splitlines()[0].decode()}, {body.decode()}")
            host, port = ready["services"]["db"]["address"].rsplit(":", 1)
            db = socket.create_connection((host, int(port)))
            f = db.makefile("rwb")
            f.write(b"hello backend\n")
            f.flush()
            print(f"  through db to the backend and back: {f.readline().decode().strip()!r}")
            with open(Path(work, "fixtures.toml"), "a") as toml:
                toml.write('\n[services.chat]\ntype = "chat"\n')
            proc.send_signal(signal.SIGHUP)
            reloaded = next_event(proc.stderr, "reloaded")
            print(f"  SIGHUP: started {reloaded['started']}, kept {reloaded['kept']}")
            f.write(b"still connected\n")
            f.flush()
            print(f"  the connection to db after the reload: {f.readline().decode().strip()!r}")
            db.close()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("  SIGTERM; one summary per service:")
    for line in err.strip().splitlines():
        event = json.loads(line)
        if event["event"] == "stopped":
            print(f"    {event['name']}: {event['connections']} connection(s), "
                  f"{event['bytes_in']} bytes in")


def next_event(stream: Any, kind: str) -> dict[str, Any]:
    """Read JSON lines from ``stream`` up to the first ``{"event": kind}``."""
    for line in stream:
        event = json.loads(line)
        if event["event"] == kind:
            return event
    raise RuntimeError(f"the stream ended before a {kind!r} event")


def through_forwarder(addr: tuple[str, int], clients: int, size: int) -> int:
    def client(n: int) -> bool:
        payload = os.urandom(size - 1).replace(b"\n", b"x") + b"\n"
        with socket.create_connection(addr) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)  # half-close travels through the forwarder
            got = b""
            while chunk := s.recv(65536):
                got += chunk
        return hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()

    return sum(nettools.GreenPool(clients).imap(client, range(clients)))


def main() -> int:
    kernel_demo.main([])
    print("\nThe ready-made servers (real commands, loopback, port 0):")
    echo, echo_addr = start("echo", "--raw")
    chat, chat_addr = start("chat")
    fwd, fwd_addr = start("forward", f"0:{echo_addr[0]}:{echo_addr[1]}")
    try:
        t = time.perf_counter()
        n = echo_clients(echo_addr, 200, 20)
        print(f"  echo: 200 clients, {n} lines echoed in {time.perf_counter() - t:.2f}s")
        for line in chat_session(chat_addr):
            print(f"  chat: a user saw {line!r}")
        t = time.perf_counter()
        ok = through_forwarder(fwd_addr, 50, 256 * 1024)
        print(
            f"  forward: 50 clients x 256 KiB through the forwarder to echo, "
            f"{ok}/50 came back intact in {time.perf_counter() - t:.2f}s"
        )
    finally:
        print("  stopping with SIGTERM; their summaries:")
        for name, proc in (("forward", fwd), ("chat", chat), ("echo", echo)):
            print(f"    {name}: {json.dumps(stop(proc))}")
    print("\nMany services from one file, on one hub (nettools run):")
    run_file()
    print("\nLink checking as a CI job would run it (nettools crawl --check-links):")
    link_check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
