"""The echo server of each peer, as that library's documentation would write it.

    python -m bench.cases._echo_servers PEER

binds 127.0.0.1 on a free port, prints one JSON line ``{"event": "listening", "port": N}`` and
echoes until killed. Every server reads with 64 KiB receives, listens with the same backlog,
accepts at least 20,000 connections at once and sets TCP_NODELAY on accepted sockets (nettools'
Server, asyncio and uvloop do that by themselves; gevent and eventlet are told to), so that
only the library differs.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import sys
from collections.abc import Callable
from typing import Any

HOST = "127.0.0.1"
BACKLOG = 1024
CONCURRENCY = 20_000  # above the 10,000 connections of the idle-memory case
RECV_SIZE = 65536


def announce(port: int) -> None:
    print(json.dumps({"event": "listening", "port": port}), flush=True)


def raise_fd_limit() -> None:
    # The idle-memory case holds 10,000 connections; the usual soft limit is 1,024.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def nodelay(sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- greenlet libraries: one greenthread per connection, blocking-style recv/sendall --------


def nettools_server() -> None:
    import nettools

    def echo(conn: Any, addr: Any) -> None:
        while True:
            data = conn.recv(RECV_SIZE)
            if not data:
                return
            conn.sendall(data)

    sock = nettools.listen((HOST, 0), backlog=BACKLOG)
    announce(sock.getsockname()[1])
    nettools.Server(sock, echo, concurrency=CONCURRENCY).serve_forever()


def nettools_cli_server(*extra: str) -> None:
    # The ready-made command itself, as a user would start it (raw byte mode).
    import os

    os.execv(sys.executable, [
        sys.executable, "-m", "nettools", "-q", "echo", "--raw", "--listen", f"{HOST}:0",
        "--max-conns", str(CONCURRENCY), "--idle-timeout", "off", *extra,
    ])


def _echo_nodelay(conn: Any, addr: Any) -> None:
    """The gevent and eventlet handler: they leave TCP_NODELAY to it."""
    nodelay(conn)
    while True:
        data = conn.recv(RECV_SIZE)
        if not data:
            return
        conn.sendall(data)


def gevent_server() -> None:
    from gevent.server import StreamServer

    # No pool: gevent's default spawns one greenlet per connection, without a bound.
    server = StreamServer((HOST, 0), _echo_nodelay, backlog=BACKLOG)
    server.start()
    announce(server.server_port)
    server.serve_forever()


def eventlet_server() -> None:
    import eventlet

    sock = eventlet.listen((HOST, 0), backlog=BACKLOG)
    announce(sock.getsockname()[1])
    eventlet.serve(sock, _echo_nodelay, concurrency=CONCURRENCY)


# --- asyncio and uvloop: the streams API, and a bare Protocol --------------------------------


async def streams_server() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(RECV_SIZE):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, HOST, 0, backlog=BACKLOG)
    announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def protocol_server() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, HOST, 0, backlog=BACKLOG)
    announce(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def on_uvloop(main: Callable[[], Any]) -> None:
    import uvloop

    uvloop.run(main())


SERVERS: dict[str, Callable[[], None]] = {
    "nettools": nettools_server,
    "nettools-echo": nettools_cli_server,
    # The same with its Prometheus endpoint on: what metrics cost.
    "nettools-echo-metrics": lambda: nettools_cli_server("--metrics", f"{HOST}:0"),
    "gevent": gevent_server,
    "eventlet": eventlet_server,
    "asyncio": lambda: asyncio.run(streams_server()),
    "asyncio-proto": lambda: asyncio.run(protocol_server()),
    "uvloop": lambda: on_uvloop(streams_server),
    "uvloop-proto": lambda: on_uvloop(protocol_server),
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SERVERS:
        print(f"usage: python -m bench.cases._echo_servers {{{','.join(SERVERS)}}}",
              file=sys.stderr)
        return 2
    raise_fd_limit()
    SERVERS[argv[0]]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
