"""A line chat that spans machines: chat nodes joined by a ZeroMQ forwarder.

Each node serves telnet/nc clients on its own port.  A line a client sends
goes to the node's other clients at once, and out on a PUB socket connected
to the forwarder's publish side; a greenthread reads the node's SUB socket,
connected to the forwarder's subscribe side, and hands the other nodes' lines
to this node's clients.  A node hears its own messages back too, and skips
them by their node id.

ZeroMQ's PUB/SUB drops what is published before the subscriptions have
travelled through the forwarder to the publisher (the "slow joiner").  So
on start a node says hello until its own hello comes back -- then the whole
path works -- and prints ``{"event": "bus", "node": ...}``.  The sockets and
every blocking call here are green (``from nettools import zmq``): many
greenthreads, one OS thread.  (For nicknames, rooms, presence and history
across servers, use ``nettools chat --bus``.)

Run it:
    nettools zmq proxy --type forwarder -f tcp://127.0.0.1:5555 -b tcp://127.0.0.1:5556
    python recipes/zmq_chat.py --port 7001 --pub tcp://127.0.0.1:5555 --sub tcp://127.0.0.1:5556
    python recipes/zmq_chat.py --port 7002 --pub tcp://127.0.0.1:5555 --sub tcp://127.0.0.1:5556
Try it:  nc 127.0.0.1 7001  and  nc 127.0.0.1 7002  (any number of each)
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import nettools
from nettools import zmq
from nettools.green import socket

TOPIC = b"zmq-chat"


def announce(**event: str) -> None:
    print(json.dumps(event))
    sys.stdout.flush()


class Node:
    """One chat node: its TCP clients, and its two sockets on the bus."""

    def __init__(self, ctx: zmq.Context, pub: str, sub: str) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.outboxes: dict[socket.socket, nettools.Queue] = {}
        self.pub = ctx.socket(zmq.PUB)
        self.pub.connect(pub)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, TOPIC)
        self.sub.connect(sub)
        self.on_bus = nettools.Event()

    def tell_clients(self, line: str, sender: socket.socket | None = None) -> None:
        for conn, outbox in self.outboxes.items():
            if conn is not sender:
                outbox.put(line)

    def publish(self, kind: str, text: str = "") -> None:
        message = {"node": self.id, "kind": kind, "text": text}
        self.pub.send_multipart([TOPIC, json.dumps(message).encode()])

    def read_bus(self) -> None:
        """Hand the other nodes' lines to our clients (a greenthread)."""
        while True:
            _topic, data = self.sub.recv_multipart()  # waits on the hub, not the thread
            message = json.loads(data)
            if message["node"] == self.id:
                if not self.on_bus.ready():
                    self.on_bus.send(True)  # our hello came back: the path works
            elif message["kind"] == "line":
                self.tell_clients(f"[{message['node']}] {message['text']}\n")

    def say_hello(self) -> None:
        """Say hello until it comes back, with growing pauses (a greenthread)."""
        pause = 0.05
        while not self.on_bus.ready():
            self.publish("hello")
            nettools.sleep(pause)
            pause = min(2 * pause, 2.0)
        announce(event="bus", node=self.id)

    def writer(self, conn: socket.socket, outbox: nettools.Queue) -> None:
        while (line := outbox.get()) is not None:
            try:
                conn.sendall(line.encode("utf-8"))
            except OSError:
                return  # gone; its reader notices

    def serve_client(self, server: nettools.Server, conn: socket.socket, addr: tuple) -> None:
        name = f"{addr[0]}:{addr[1]}"
        outbox = nettools.Queue()
        writer = nettools.spawn(self.writer, conn, outbox)
        self.outboxes[conn] = outbox
        outbox.put(f"* you are {name} on node {self.id}\n")
        server.set_idle(conn)  # a chat client mostly waits: a stop may close it at once
        try:
            with conn.makefile("rb") as lines:
                for raw in lines:
                    text = raw.decode("utf-8", "replace").rstrip("\r\n")
                    self.tell_clients(f"[{self.id}] {name}: {text}\n", sender=conn)
                    self.publish("line", f"{name}: {text}")
        except OSError:
            pass
        finally:
            del self.outboxes[conn]
            outbox.put(None)
            writer.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A chat node on a ZeroMQ forwarder.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7001,
                        help="port, 0 for any (default: %(default)s)")
    parser.add_argument("--pub", required=True, help="the forwarder's publish (XSUB) endpoint")
    parser.add_argument("--sub", required=True, help="the forwarder's subscribe (XPUB) endpoint")
    args = parser.parse_args(argv)

    ctx = zmq.Context()
    node = Node(ctx, args.pub, args.sub)
    nettools.spawn(node.read_bus)
    nettools.spawn(node.say_hello)
    listener = nettools.listen((args.host, args.port))
    server = nettools.Server(
        listener, lambda conn, addr: node.serve_client(server, conn, addr), 1000, name="zmq-chat"
    )
    server.install_signal_handlers(drain_timeout=2.0)
    host, port = server.address[:2]
    announce(event="listening", service="zmq-chat", address=f"{host}:{port}")
    server.serve_forever()
    ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
