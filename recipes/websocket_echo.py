"""Websocket echo server: ``WebSocketWSGI`` on nettools' WSGI server.

The decorated handler gets one ``WebSocket`` per connection, in its own
greenthread, and reads it like a blocking file: ``for message in ws`` yields
each text (``str``) or binary (``bytes``) message until the client closes, and
``ws.send`` answers.  Compression (permessage-deflate), pings, size limits and
the closing handshake are taken care of.

A decorated handler answers plain HTTP requests with 400, so the WSGI app below
sends upgrades to it and everything else to a small page that talks to the
echo from a browser.  On start it prints one JSON line with the address it
listens on (handy with ``--port 0``); SIGTERM or Ctrl-C stop it gracefully.

Run it:  python recipes/websocket_echo.py --port 8000
Try it:  python -m websockets ws://127.0.0.1:8000/   (or open http://127.0.0.1:8000/)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import nettools
from nettools.green import socket
from nettools.web import websocket, wsgi

PAGE = b"""<!doctype html>
<title>nettools websocket echo</title>
<input id=msg value="hello" autofocus> <button onclick="ws.send(msg.value)">send</button>
<pre id=log></pre>
<script>
const ws = new WebSocket(location.href.replace(/^http/, "ws"));
ws.onmessage = (e) => { log.textContent += e.data + "\\n"; };
</script>
"""


@websocket.WebSocketWSGI(max_message_size=1 << 20)
def echo(ws: websocket.WebSocket) -> None:
    """Runs once per connection; returning closes the websocket (code 1000)."""
    for message in ws:
        ws.send(message)


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
        return echo(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [PAGE]


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Echo every websocket message back.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port, 0 for any (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = nettools.listen((args.host, args.port), family=family)
    server = wsgi.WSGIServer(sock, app, log_output=False)
    host, port = sock.getsockname()[:2]
    address = format_address(host, port)
    print(json.dumps({"event": "listening", "service": "websocket-echo", "address": address}))
    sys.stdout.flush()

    # SIGTERM/SIGINT: stop accepting, close idle websockets, let others finish a message.
    server.install_signal_handlers(drain_timeout=5)
    server.serve_forever()
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
