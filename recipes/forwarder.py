"""Port forwarder: accept on one port, relay each connection to a target host:port.

For every client the forwarder opens a connection to the target and runs two
greenthreads, one per direction, each copying bytes until its side says EOF.
A half-close is passed on: when the client shuts down its sending side, the
target sees EOF too but can still answer, and the other way round.  A reset
on either side ends both directions.

The accept loop is ``nettools.Server``: it bounds concurrency, closes each
client socket when its handler returns, and ``install_signal_handlers`` makes
Ctrl-C / SIGTERM stop accepting and let open connections finish.  With
``--max-clients N`` it stops by itself after N connections.  On start it
prints one JSON line with the address it listens on.

Run it:  python recipes/forwarder.py --port 8080 --target example.com:80
Try it:  curl -H 'Host: example.com' http://127.0.0.1:8080/
"""

from __future__ import annotations

import argparse
import json
import sys

import nettools
from nettools.green import socket


def parse_target(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def pump(src: socket.socket, dst: socket.socket) -> int:
    """Copy ``src`` to ``dst`` until EOF, then pass the half-close on.  Returns bytes copied."""
    copied = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            copied += len(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        # One side reset or vanished: wake the other direction's pump too.
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Forward TCP connections to a target.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port, 0 for any (default: %(default)s)"
    )
    parser.add_argument(
        "--target", type=parse_target, required=True, help="host:port to forward to"
    )
    parser.add_argument("--concurrency", type=int, default=1000, help="max connections at once")
    parser.add_argument(
        "--max-clients", type=int, default=0, help="stop after this many connections (0: never)"
    )
    args = parser.parse_args(argv)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = nettools.listen((args.host, args.port), family=family)
    handled = 0

    def forward(client: socket.socket, addr: tuple) -> None:
        nonlocal handled
        try:
            upstream = socket.create_connection(args.target, timeout=10)
        except OSError as exc:
            print(f"cannot reach {format_address(*args.target)}: {exc}", file=sys.stderr)
        else:
            upstream.settimeout(None)  # the timeout was for connecting only
            with upstream:
                there = nettools.spawn(pump, client, upstream)
                back = pump(upstream, client)
                sent = there.wait()
            print(f"{format_address(*addr[:2])}: {sent} bytes up, {back} down", file=sys.stderr)
        handled += 1
        if args.max_clients and handled >= args.max_clients:
            raise nettools.StopServe()  # Server stops, letting the others finish

    server = nettools.Server(listener, forward, args.concurrency, name="forwarder")
    server.install_signal_handlers(drain_timeout=5.0)
    host, port = server.address[:2]
    print(
        json.dumps(
            {"event": "listening", "service": "forward", "address": format_address(host, port)}
        )
    )
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
