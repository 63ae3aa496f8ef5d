"""Websocket echo under a separate load generator: round trips/s with 100 clients.

Each run starts a websocket echo server in its own process pinned to core 1 and the load
generator in another process pinned to core 0. Peers:

* ``nettools``: ``nettools.web.websocket.WebSocketWSGI`` on ``nettools.web.wsgi``;
* ``uvloop``: the ``websockets`` library's own asyncio server (``websockets.asyncio.server``)
  on uvloop's loop; ``asyncio``: the same on the stock loop.

Both servers run the library defaults (1 MiB message limit, pings every 20 s, which a run
never reaches) and the same Sans-I/O core, so what differs is the I/O layer around it.

The load generator is the same for every peer: one uvloop process, C connections each in a
closed loop (send a message, wait for the echo, send again). It opens each connection with the
``websockets`` Sans-I/O client (``ClientProtocol``) and checks the first echo through it; after
that it writes one pre-built frame per round trip and only reads frame headers, so that the
client costs a small fraction of what the server does (``client_cpu_pct`` says how much).

* ``ws_echo_cC_S``: no compression offered, S-byte text messages.
* ``ws_echo_cC_S_deflate``: permessage-deflate, the client with ``client_no_context_takeover``
  so one compressed frame can be replayed; the server compresses its replies as it likes.
* ``ws_mem_idle_10k``: ``n`` idle websockets (10,000 by default), each through its handshake
  and one echo, then silent but answering the server's pings, as a browser tab would.
  Reports the server's RSS growth per connection in KiB; its "ops/s" is the rate at which
  the connections were set up.  ``ws_mem_idle_10k_deflate``: the same with permessage-deflate
  negotiated (what browsers offer), whose compression state each connection keeps.

``n`` is the measured time in milliseconds after a one-second warm-up. Reported: round trips/s,
p50/p99 round-trip latency in microseconds, the CPU share of server and client, the server's
CPU time per round trip (``server_us_per_rt``, the figure least affected by a busy machine) and
``disturbed_pct``: how much of the two cores other processes used meanwhile (a run disturbed
beyond DISTURBED_PCT is measured again, ``attempts``).

    python -m bench.cases.websocket serve PEER            # an echo server; prints its port
    python -m bench.cases.websocket load PORT C S MS [--deflate] [--socketio] [--server-pid PID]
    python -m bench.cases.websocket idle PORT N [--deflate]  # N idle clients until stdin ends

With ``--socketio`` the load generator speaks Socket.IO instead (Engine.IO 4 over a
websocket): it joins the default namespace, then sends ``42["echo", MESSAGE]`` events and
counts the events that come back (``bench/cases/socketio.py`` uses it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cases import Case, CaseFn, Result
from bench.cases._procs import idle_cost, ready_port, started

HOST = "127.0.0.1"
SERVER_CORE = 1
CLIENT_CORE = 0
WARMUP_S = 1.0
STARTUP_TIMEOUT_S = 30.0
IDLE_SETUP_TIMEOUT_S = 300.0
IDLE_BATCH = 100
#: Connections the nettools server serves at once (its default, 1024, is below 10,000).
MAX_CONNS = 20_000
BACKLOG = 1024
# A run in which other processes used more than DISTURBED_PCT percent of the two cores is
# repeated, up to MAX_ATTEMPTS runs in all.
DISTURBED_PCT = 5.0
MAX_ATTEMPTS = 3
REPO_ROOT = Path(__file__).resolve().parents[2]
PEERS = ("nettools", "uvloop", "asyncio")
#: Where a Socket.IO client opens its websocket (Engine.IO protocol 4).
SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"


def _announce(port: int) -> None:
    print(json.dumps({"event": "listening", "port": port}), flush=True)


# --- servers ------------------------------------------------------------------------------


def _nettools_server() -> None:
    import nettools
    from nettools.web import websocket, wsgi

    @websocket.WebSocketWSGI
    def echo(ws: websocket.WebSocket) -> None:
        while (message := ws.wait()) is not None:
            ws.send(message)

    sock = nettools.listen((HOST, 0), backlog=BACKLOG)
    _announce(sock.getsockname()[1])
    wsgi.server(sock, echo, log_output=False, max_size=MAX_CONNS)  # ws_mem_idle_10k


async def _websockets_server() -> None:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: Any) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass  # the load generator closes with echoes still in flight

    async with serve(echo, HOST, 0, backlog=BACKLOG) as server:
        _announce(next(iter(server.sockets)).getsockname()[1])
        await server.serve_forever()


def _serve(peer: str) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 idle clients
    if peer == "nettools":
        _nettools_server()
    elif peer == "uvloop":
        import uvloop

        uvloop.run(_websockets_server())
    else:
        asyncio.run(_websockets_server())


# --- load generator -----------------------------------------------------------------------


class _Handshaking(asyncio.Protocol):
    """A websocket client connection whose handshake and first echo go through the library's
    sans-I/O protocol; ``ready`` is set once the echo came back."""

    def __init__(
        self, path: str, extensions: list[Any] | None, ready: asyncio.Future[None]
    ) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.proto = ClientProtocol(parse_uri(f"ws://{HOST}{path}"), extensions=extensions)
        self.ready = ready
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.proto.send_request(self.proto.connect())
        self._write_pending()

    def _write_pending(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.transport.write(data)


class _Client(_Handshaking):
    """One connection in a closed loop: handshake and first echo through the library, then
    replay one pre-built frame per round trip and parse only the headers of the replies."""

    def __init__(
        self, message: str, deflate: bool, ready: asyncio.Future[None], socketio: bool = False
    ) -> None:
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        from websockets.frames import Frame, Opcode

        factory = ClientPerMessageDeflateFactory(client_no_context_takeover=True)
        super().__init__(SOCKETIO_PATH if socketio else "/", [factory] if deflate else None, ready)
        # Engine.IO's answer to its server's ping (a masked text frame "3").
        self.pong = Frame(Opcode.TEXT, b"3").serialize(mask=True, extensions=[])
        # Socket.IO: the message is an event, sent once the namespace is joined.
        self.socketio = socketio
        self.joined = not socketio
        if socketio:  # as the servers encode it: compact JSON
            message = "42" + json.dumps(["echo", message], separators=(",", ":"))
        self.message = message
        self.running = False
        self.closing = False
        self.frame = b""
        self.buf = b""
        self.count = 0
        self.sent_at = 0.0
        self.latencies: list[float] | None = None

    def data_received(self, data: bytes) -> None:
        if self.running:
            self._replies(data)
            return
        if self.closing:
            return
        from websockets.frames import Frame, Opcode
        from websockets.protocol import OPEN

        proto = self.proto
        proto.receive_data(data)
        for event in proto.events_received():
            if isinstance(event, Frame) and not self.joined:
                # Engine.IO's open packet ("0{...}"), then Socket.IO's connect ("40").
                if event.data.startswith(b"0"):
                    proto.send_text(b"40")
                elif event.data.startswith(b"40"):
                    self.joined = True
                    proto.send_text(self.message.encode())
                self._write_pending()
            elif isinstance(event, Frame):
                if event.opcode is not Opcode.TEXT or event.data.decode() != self.message:
                    self.ready.set_exception(RuntimeError(f"bad echo {event!r}"))
                    return
                # Verified through the library; from now on replay the same frame.
                extensions = proto.extensions
                self.frame = Frame(Opcode.TEXT, self.message.encode()).serialize(
                    mask=True, extensions=extensions
                )
                self.running = True
                self.ready.set_result(None)
            elif proto.state is OPEN:  # the handshake response
                if proto.handshake_exc is not None:
                    self.ready.set_exception(proto.handshake_exc)
                    return
                if self.joined:
                    proto.send_text(self.message.encode())
                    self._write_pending()
        if proto.handshake_exc is not None and not self.ready.done():
            self.ready.set_exception(proto.handshake_exc)

    def close(self) -> None:
        from websockets.frames import Close, CloseCode, Frame, Opcode

        close = Close(CloseCode.NORMAL_CLOSURE, "")
        self.transport.write(Frame(Opcode.CLOSE, close.serialize()).serialize(mask=True))
        self.running = False
        self.closing = True  # what follows is ignored: echoes in flight, the server's close

    def start(self, latencies: list[float] | None) -> None:
        self.latencies = latencies
        self.sent_at = time.perf_counter()
        self.transport.write(self.frame)

    def _replies(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, end = 0, len(buf)
        done = 0
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if end - pos < head + length:
                break
            start = pos + head
            pos = start + length
            if b0 & 0x0F in (1, 2):  # a data frame: control frames are not echoes
                if not self.socketio or buf[start : start + 2] == b"42":
                    done += 1
                elif buf[start : start + length] == b"2":  # Engine.IO's ping
                    self.transport.write(self.pong)
        self.buf = buf[pos:] if pos < end else b""
        if done:
            now = time.perf_counter()
            self.count += done
            if self.latencies is not None:
                self.latencies.append(now - self.sent_at)
            self.sent_at = now
            self.transport.write(self.frame)


# --- idle clients -------------------------------------------------------------------------


class _IdleClient(_Handshaking):
    """One connection through its handshake and one echo, then silent; it keeps feeding what
    arrives to the protocol, which answers the server's pings (as a browser does)."""

    def __init__(self, deflate: bool, ready: asyncio.Future[None]) -> None:
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

        super().__init__("/", [ClientPerMessageDeflateFactory()] if deflate else None, ready)

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.protocol import OPEN

        proto = self.proto
        proto.receive_data(data)
        for event in proto.events_received():
            if self.ready.done():
                continue
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.ready.set_result(None)  # the echo came back: idle from now on
            elif proto.state is OPEN:
                proto.send_text(b"hello")
        if proto.handshake_exc is not None and not self.ready.done():
            self.ready.set_exception(proto.handshake_exc)
        self._write_pending()  # pongs


async def _idle(port: int, conns: int, deflate: bool) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()

    async def one() -> Any:
        ready: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda: _IdleClient(deflate, ready), HOST, port
        )
        await asyncio.wait_for(ready, STARTUP_TIMEOUT_S)
        return transport

    transports = []
    for start in range(0, conns, IDLE_BATCH):  # a batch at a time: a backlog's worth
        batch = [one() for _ in range(min(IDLE_BATCH, conns - start))]
        transports += await asyncio.gather(*batch)
    print(json.dumps({"event": "idle", "connections": len(transports)}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the harness lets go


def _run_idle(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.websocket idle")
    parser.add_argument("port", type=int)
    parser.add_argument("conns", type=int)
    parser.add_argument("--deflate", action="store_true")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(_idle(args.port, args.conns, args.deflate))
    return 0


def _idle_memory(peer: str, conns: int, deflate: bool) -> dict[str, Any]:
    with started(
        _server_command(peer), SERVER_CORE, cwd=REPO_ROOT, stdout=subprocess.PIPE
    ) as server:
        port = ready_port(server, STARTUP_TIMEOUT_S, f"{peer} websocket server")
        cmd = [sys.executable, "-m", "bench.cases.websocket", "idle", str(port), str(conns)]
        cmd += ["--deflate"] if deflate else []
        return idle_cost(server.pid, cmd, conns, CLIENT_CORE, IDLE_SETUP_TIMEOUT_S, cwd=REPO_ROOT)


def _core_busy_seconds() -> dict[int, float]:
    """Busy (non-idle) time of each core so far, from /proc/stat ({} if unreadable)."""
    busy: dict[int, float] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return busy
    tick = os.sysconf("SC_CLK_TCK")
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]
            busy[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4]) / tick  # minus idle, iowait
    return busy


def _cpu_seconds(pid: int) -> float:
    """User+system CPU time of process ``pid`` (-1 if /proc cannot tell)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
    port: int,
    conns: int,
    size: int,
    duration: float,
    deflate: bool,
    server_pid: int,
    socketio: bool = False,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    message = "x" * size
    clients: list[_Client] = []
    for _ in range(conns):
        ready: asyncio.Future[None] = loop.create_future()
        _, client = await loop.create_connection(
            lambda ready=ready: _Client(message, deflate, ready, socketio), HOST, port
        )
        await asyncio.wait_for(ready, STARTUP_TIMEOUT_S)
        clients.append(client)
    for c in clients:
        c.start(None)
    await asyncio.sleep(WARMUP_S)

    latencies: list[float] = []
    for c in clients:
        c.latencies = latencies
    before = sum(c.count for c in clients)
    cores0 = _core_busy_seconds()
    cpu0, srv0, t0 = time.process_time(), _cpu_seconds(server_pid), time.perf_counter()
    await asyncio.sleep(duration)
    after = sum(c.count for c in clients)
    cpu1, srv1, t1 = time.process_time(), _cpu_seconds(server_pid), time.perf_counter()
    cores1 = _core_busy_seconds()
    # Close politely, so that neither server has a reason to log anything.
    for c in clients:
        c.close()
    await asyncio.sleep(0.2)
    for c in clients:
        c.transport.abort()

    seconds = t1 - t0
    rts = after - before
    latencies.sort()

    def pick(q: float) -> float:
        if not latencies:
            return -1.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6

    server_cpu = (srv1 - srv0) if srv0 >= 0 and srv1 >= 0 else -1.0
    # What other processes took from the two cores meanwhile (a shared machine): percent.
    disturbed = -1.0
    if server_cpu >= 0 and {CLIENT_CORE, SERVER_CORE} <= cores0.keys() & cores1.keys():
        client_core = cores1[CLIENT_CORE] - cores0[CLIENT_CORE] - (cpu1 - cpu0)
        server_core = cores1[SERVER_CORE] - cores0[SERVER_CORE] - server_cpu
        disturbed = max(0.0, client_core) + max(0.0, server_core)
        disturbed = disturbed / seconds * 100
    return {
        "disturbed_pct": disturbed,
        "round_trips": rts,
        "seconds": seconds,
        "round_trips_per_s": rts / seconds,
        "p50_us": pick(0.5),
        "p99_us": pick(0.99),
        "client_cpu_pct": (cpu1 - cpu0) / seconds * 100,
        "server_cpu_pct": server_cpu / seconds * 100 if server_cpu >= 0 else -1.0,
    }


def _run_load(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.websocket load")
    parser.add_argument("port", type=int)
    parser.add_argument("conns", type=int)
    parser.add_argument("size", type=int)
    parser.add_argument("ms", type=int)
    parser.add_argument("--deflate", action="store_true")
    parser.add_argument("--server-pid", type=int, default=-1)
    parser.add_argument("--socketio", action="store_true", help="speak Socket.IO (echo events)")
    args = parser.parse_args(argv)
    import uvloop

    result = uvloop.run(
        _load(
            args.port, args.conns, args.size, args.ms / 1000, args.deflate, args.server_pid,
            args.socketio,
        )  # fmt: skip
    )
    print(json.dumps(result), flush=True)
    return 0


# --- cases --------------------------------------------------------------------------------


def measure(
    server: list[str],
    what: str,
    conns: int,
    size: int,
    duration_ms: int,
    deflate: bool = False,
    socketio: bool = False,
) -> Result:
    """Round trips/s of the echo server that command ``server`` starts (it prints a JSON
    ready line with its port), loaded by ``conns`` clients; ``what`` names it in errors.
    With ``socketio`` the clients speak Socket.IO and the server echoes "echo" events."""
    # On a shared machine other processes can take turns on either core mid-run; such a run
    # is measured again (as in bench/cases/echo.py) and the least disturbed one is kept.
    best: dict[str, Any] = {}
    attempts = 0
    while attempts < MAX_ATTEMPTS and (not best or best["disturbed_pct"] > DISTURBED_PCT):
        attempts += 1
        res = _run_once(server, what, conns, size, duration_ms, deflate, socketio)
        if not best or res["disturbed_pct"] < best["disturbed_pct"]:
            best = res
    metrics: dict[str, Any] = {
        "ops_per_s": best["round_trips_per_s"],
        "seconds": best["seconds"],
        "p50_us": best["p50_us"],
        "p99_us": best["p99_us"],
        # Below ~100 the server was not the bottleneck.
        "server_cpu_pct": best["server_cpu_pct"],
        # Well below the server's: the load generator does not set the pace.
        "client_cpu_pct": best["client_cpu_pct"],
        "disturbed_pct": best["disturbed_pct"],
        "attempts": attempts,
    }
    if best["server_cpu_pct"] >= 0 and best["round_trips"]:
        cpu_s = best["server_cpu_pct"] / 100 * best["seconds"]
        metrics["server_us_per_rt"] = cpu_s / best["round_trips"] * 1e6
    return metrics


def _run_once(
    server_cmd: list[str],
    what: str,
    conns: int,
    size: int,
    duration_ms: int,
    deflate: bool,
    socketio: bool,
) -> dict[str, Any]:
    """One fresh server and one load generator run: the load generator's JSON result."""
    here = [sys.executable, "-m", "bench.cases.websocket"]
    with started(server_cmd, SERVER_CORE, cwd=REPO_ROOT, stdout=subprocess.PIPE) as server:
        port = ready_port(server, STARTUP_TIMEOUT_S, what)
        cmd = [
            *here,
            "load",
            str(port),
            str(conns),
            str(size),
            str(duration_ms),
            "--server-pid",
            str(server.pid),
        ]
        if deflate:
            cmd.append("--deflate")
        if socketio:
            cmd.append("--socketio")
        with started(cmd, CLIENT_CORE, cwd=REPO_ROOT, stdout=subprocess.PIPE) as client:
            timeout = 2 * STARTUP_TIMEOUT_S + WARMUP_S + duration_ms / 1000
            out, _ = client.communicate(timeout=timeout)
            if client.returncode != 0:
                raise RuntimeError(f"load generator failed with exit status {client.returncode}")
        if server.poll() is not None:
            raise RuntimeError(f"{what} died (exit status {server.returncode})")
    return json.loads(out)


def echo_case(
    peers: tuple[str, ...],
    command: Callable[[str], list[str]],
    what: str,
    conns: int,
    size: int,
    deflate: bool = False,
    socketio: bool = False,
) -> Case:
    """A case measuring, for each of ``peers``, the echo server ``command(peer)`` starts."""

    def for_peer(peer: str) -> CaseFn:
        def run(n: int) -> Result:
            if n == 0:
                return None  # the harness's warm-up call; the load generator warms up itself
            return measure(command(peer), f"{peer} {what}", conns, size, n, deflate, socketio)

        return run

    return Case(
        n=3000,
        unit="round trips",
        warmup=0,
        peers={peer: for_peer(peer) for peer in peers},
        compare=("p99_us", "server_us_per_rt"),
    )


def _server_command(peer: str) -> list[str]:
    return [sys.executable, "-m", "bench.cases.websocket", "serve", peer]


def _case(conns: int, size: int, deflate: bool = False) -> Case:
    return echo_case(PEERS, _server_command, "websocket server", conns, size, deflate)


def _memory_case(conns: int, deflate: bool = False) -> Case:
    def for_peer(peer: str) -> CaseFn:
        def run(n: int) -> Result:
            return None if n == 0 else _idle_memory(peer, n, deflate)

        return run

    return Case(n=conns, unit="websockets set up", warmup=0,
                peers={peer: for_peer(peer) for peer in PEERS},
                compare=("kib_per_conn",))  # fmt: skip


CASES: dict[str, Case] = {
    "ws_echo_c100_64": _case(100, 64),
    "ws_echo_c100_64_deflate": _case(100, 64, deflate=True),
    "ws_mem_idle_10k": _memory_case(10_000),
    "ws_mem_idle_10k_deflate": _memory_case(10_000, deflate=True),
}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "serve" and argv[1] in PEERS:
        _serve(argv[1])
        return 0
    if argv and argv[0] == "load":
        return _run_load(argv[1:])
    if argv and argv[0] == "idle":
        return _run_idle(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
