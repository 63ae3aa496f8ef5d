"""Websocket chat: one WSGI app serves a tiny page and a websocket that
broadcasts every message to everyone connected.

Each websocket runs its handler in its own greenthread, so the handler reads
with a plain blocking loop and sends to the others with plain ``send`` calls.
A participant whose connection fails is simply dropped from the set.  (For
rooms, nicknames, history, rate limits and a policy for browsers that stop
reading, use ``nettools wschat``.)

On start it prints one JSON line with the address it listens on (handy with
``--port 0``); SIGTERM or Ctrl-C stop it gracefully: open websockets get the
close code 1001 (going away).

Run it:  python recipes/websocket_chat.py --port 7000
Try it:  open http://127.0.0.1:7000/ in two browser tabs
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
<meta charset="utf-8">
<title>nettools websocket chat</title>
<form id=f><input id=msg autofocus autocomplete=off> <button>send</button></form>
<ul id=log></ul>
<script>
const ws = new WebSocket(location.href.replace(/^http/, "ws") + "chat");
ws.onmessage = (e) => {
  const li = document.createElement("li");
  li.textContent = e.data;          // text, never HTML
  log.appendChild(li);
};
f.onsubmit = (e) => { e.preventDefault(); ws.send(msg.value); msg.value = ""; };
</script>
"""

participants: set[websocket.WebSocket] = set()


@websocket.WebSocketWSGI(max_message_size=64 << 10)
def chat(ws: websocket.WebSocket) -> None:
    """Runs once per connection: relay each message to everyone, sender included."""
    participants.add(ws)
    try:
        for message in ws:
            for p in list(participants):
                try:
                    p.send(message)
                except websocket.WebSocketClosed:
                    participants.discard(p)
    finally:
        participants.discard(ws)


def app(environ: dict[str, Any], start_response: Any) -> Any:
    if environ["PATH_INFO"] == "/chat":
        return chat(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [PAGE]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A websocket chat that broadcasts to all.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=7000, help="port, 0 for any (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = nettools.listen((args.host, args.port), family=family)
    server = wsgi.WSGIServer(sock, app, log_output=False)
    host, port = sock.getsockname()[:2]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(json.dumps({"event": "listening", "service": "websocket-chat", "address": address}))
    sys.stdout.flush()

    server.install_signal_handlers(drain_timeout=5)
    server.serve_forever()
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
