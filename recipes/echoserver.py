"""Echo server: ``nettools.listen`` + ``nettools.serve``, one greenthread per client.

``serve`` accepts connections and runs the handler for each in its own
greenthread (at most ``--concurrency`` at once); the handler just sends back
whatever it reads.  Thousands of clients can be connected at the same time
while the code reads like a blocking one-client-at-a-time server.

A handler stops the server by raising ``nettools.StopServe``: here that happens
once ``--max-clients`` clients have been served (0, the default, means never).
Ctrl-C or SIGTERM also stop it.  On start it prints one JSON line with the
address it listens on (handy with ``--port 0``).

Run it:  python recipes/echoserver.py --port 6000
Try it:  nc 127.0.0.1 6000
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

import nettools
from nettools.green import socket


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Echo every byte back to its sender.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=6000, help="port, 0 for any (default: %(default)s)"
    )
    parser.add_argument("--concurrency", type=int, default=1000, help="max clients served at once")
    parser.add_argument(
        "--max-clients", type=int, default=0, help="stop after serving this many clients (0: never)"
    )
    args = parser.parse_args(argv)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    server = nettools.listen((args.host, args.port), family=family)
    host, port = server.getsockname()[:2]
    print(
        json.dumps({"event": "listening", "service": "echo", "address": format_address(host, port)})
    )
    sys.stdout.flush()

    served = 0

    def echo(conn: socket.socket, addr: tuple) -> None:
        """Runs in its own greenthread; ``serve`` closes ``conn`` when it returns."""
        nonlocal served
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
        served += 1
        if args.max_clients and served >= args.max_clients:
            raise nettools.StopServe()

    # SIGTERM should end the server the way Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        nettools.serve(server, echo, concurrency=args.concurrency)
    except KeyboardInterrupt:
        pass
    print(f"served {served} clients", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
