"""Multi-user line chat: every line a client sends goes to every other client.

Each client has a reader greenthread (the ``Server`` handler) and a writer
greenthread fed by its own queue.  Broadcasting only puts a line into the
other clients' queues, so one slow or stuck client never holds up the rest.

Chat connections are idle nearly all the time; the handler says so with
``server.set_idle``, so on Ctrl-C / SIGTERM the server closes them at once
instead of waiting for them to finish.  On start it prints one JSON line with
the address it listens on.

Run it:  python recipes/chat_server.py --port 7000
Try it:  nc 127.0.0.1 7000   (in two or more terminals)
"""

from __future__ import annotations

import argparse
import json
import sys

import nettools
from nettools.green import socket


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ChatRoom:
    """The participants and their outgoing queues."""

    def __init__(self) -> None:
        self.outboxes: dict[socket.socket, nettools.Queue] = {}

    def broadcast(self, line: str, sender: socket.socket | None = None) -> None:
        for conn, outbox in self.outboxes.items():
            if conn is not sender:
                outbox.put(line)

    def writer(self, conn: socket.socket, outbox: nettools.Queue) -> None:
        """Send queued lines to one client until told to stop (``None``)."""
        while True:
            line = outbox.get()
            if line is None:
                return
            try:
                conn.sendall(line.encode("utf-8"))
            except OSError:
                return  # gone; its reader notices and cleans up

    def serve_client(self, server: nettools.Server, conn: socket.socket, addr: tuple) -> None:
        name = format_address(*addr[:2])
        outbox = nettools.Queue()
        writer = nettools.spawn(self.writer, conn, outbox)
        self.outboxes[conn] = outbox
        others = len(self.outboxes) - 1
        outbox.put(f"* welcome {name}, {others} other(s) here\n")
        self.broadcast(f"* {name} joined\n", sender=conn)
        server.set_idle(conn)  # waiting for lines; a stop may close it at once
        try:
            with conn.makefile("rb") as lines:
                for raw in lines:
                    text = raw.decode("utf-8", "replace").rstrip("\r\n")
                    self.broadcast(f"{name}: {text}\n", sender=conn)
        except OSError:
            pass  # reset by the peer, or shut down by a stopping server
        finally:
            del self.outboxes[conn]
            outbox.put(None)
            writer.wait()
            self.broadcast(f"* {name} left\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A line chat: lines go to everyone else.")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=7000, help="port, 0 for any (default: %(default)s)"
    )
    parser.add_argument("--max-users", type=int, default=1000, help="max clients at once")
    args = parser.parse_args(argv)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    room = ChatRoom()
    listener = nettools.listen((args.host, args.port), family=family)
    server = nettools.Server(
        listener,
        lambda conn, addr: room.serve_client(server, conn, addr),
        args.max_users,
        name="chat",
    )
    server.install_signal_handlers(drain_timeout=2.0)
    host, port = server.address[:2]
    print(
        json.dumps({"event": "listening", "service": "chat", "address": format_address(host, port)})
    )
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
