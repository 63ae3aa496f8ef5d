"""What ``make demo`` runs: the kernel, then the ready-made servers, on loopback.

1. The green kernel (recipes/kernel_demo.py): pools, piles, queues, timeouts.
2. ``nettools echo``, ``nettools chat`` and ``nettools forward`` started as real
   commands on port 0, each announcing itself with its JSON ready line; a few
   hundred green clients drive them; SIGTERM stops each and its JSON summary
   is printed.
3. ``nettools crawl --check-links`` on a small site served on loopback with one
   broken link, as a CI job would run it: the broken link, who links to it,
   and exit status 2.

Run it:  python recipes/demo.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
        site = subprocess.Popen(
            [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", root],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            port = re.search(r"port (\d+)", site.stdout.readline()).group(1)
            url = f"http://127.0.0.1:{port}/"
            crawl = ["crawl", url, "--check-links", "--format", "json"]
            res = subprocess.run([sys.executable, "-m", "nettools", *crawl],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        finally:
            site.terminate()
            site.wait()
    report = json.loads(res.stdout)
    print(f"  crawl {url}: {report['summary']['pages']} pages, exit status {res.returncode}")
    for link in report["broken"]:
        print(f"    broken: {link['url']} ({link['status']}), linked from {link['referrers']}")


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
    print("\nLink checking as a CI job would run it (nettools crawl --check-links):")
    link_check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
