"""Hello-world WSGI app served by ``nettools.web.wsgi.server``.

``wsgi.server`` serves any WSGI (PEP 3333) application: one greenthread per
connection, keep-alive, pipelining, chunked bodies.  It blocks until the
server stops; with ``handle_signals=True`` SIGTERM and Ctrl-C stop it
gracefully: it stops accepting, closes idle keep-alive connections and lets
requests in flight finish.  On start it prints one JSON line with the address
it listens on (handy with ``--port 0``).

Run it:  python recipes/wsgi_hello.py --port 8080
Try it:  curl http://127.0.0.1:8080/
"""

from __future__ import annotations

import argparse
import json
import sys

import nettools
from nettools.green import socket
from nettools.web import wsgi


def hello(environ: dict, start_response) -> list[bytes]:
    """The WSGI application: the same greeting for every path."""
    body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a hello-world WSGI app.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port, 0 for any (default: 8080)")
    parser.add_argument("--access-log", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = nettools.listen((args.host, args.port), family=family)
    host, port = sock.getsockname()[:2]
    event = {"event": "listening", "service": "wsgi", "address": format_address(host, port)}
    print(json.dumps(event), flush=True)

    wsgi.server(sock, hello, log_output=args.access_log, handle_signals=True, drain_timeout=5)
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
