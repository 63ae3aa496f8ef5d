"""nettools.zmq: green pyzmq over real ZeroMQ (tcp:// on 127.0.0.1, ipc:// in tmp_path).

Each test that could hang waits under a ``nettools.Timeout`` and a pytest timeout: a missed
ZMQ_FD edge shows up as a hang, which these bounds turn into a failure.
"""

from __future__ import annotations

import json
import os
import struct
import time

import pytest
from helpers.green import settle
from helpers.isolated import run_isolated

import nettools
from nettools import zmq
from nettools.green import zmq as green_zmq

pytestmark = pytest.mark.timeout(60)

#: Messages through each of the big tests (none lost, none duplicated).
MILLION = 1_000_000
SEQ = struct.Struct("=II")  # (sender, sequence number)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def bind(sock: zmq.Socket, transport: str, tmp_path, name: str = "s") -> str:
    """Bind ``sock`` on loopback (a free tcp port, or an ipc path in ``tmp_path``)."""
    if transport == "tcp":
        sock.bind("tcp://127.0.0.1:*")
        return sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    endpoint = f"ipc://{tmp_path}/{name}.ipc"
    sock.bind(endpoint)
    return endpoint


def pair(ctx, kind_bound: int, kind_connected: int, transport: str = "tcp", tmp_path=None):
    a = ctx.socket(kind_bound)
    b = ctx.socket(kind_connected)
    b.connect(bind(a, transport, tmp_path))
    return a, b


class SeqCheck:
    """Counts (sender, seq) messages: each once, and in order per sender and receiver."""

    def __init__(self, senders: int, per_sender: int, receivers: int) -> None:
        self.per = per_sender
        self.seen = [bytearray(per_sender) for _ in range(senders)]
        self.last = [[-1] * senders for _ in range(receivers)]
        self.count = 0
        self.total = senders * per_sender
        self.done = nettools.Event()
        self.errors: list[str] = []

    def got(self, receiver: int, payload: bytes) -> None:
        k, i = SEQ.unpack(payload)
        if self.seen[k][i]:
            self.errors.append(f"duplicate {k}:{i}")
        self.seen[k][i] = 1
        if i <= self.last[receiver][k]:
            self.errors.append(f"receiver {receiver} got {k}:{i} after {self.last[receiver][k]}")
        self.last[receiver][k] = i
        self.count += 1
        if self.count == self.total:
            self.done.send()

    def wait(self, writers: list, helpers: list, timeout: float) -> None:
        """Wait (within ``timeout``) for the writers and for every message; then kill
        the ``helpers`` (readers, echoes, a proxy), which run for ever."""
        try:
            with nettools.Timeout(timeout):
                for w in writers:
                    w.wait()
                self.done.wait()
        finally:
            for t in helpers:
                t.kill()

    def verify(self) -> None:
        assert not self.errors, self.errors[:5]
        assert self.count == self.total
        assert all(all(s) for s in self.seen)


def _senders(sockets: list, per_socket: int, per_sender: int) -> list:
    """``per_socket`` greenthreads on each socket, each sending its own sequence."""

    def send_seq(sock, k: int) -> None:
        send = sock.send
        pack = SEQ.pack
        for i in range(per_sender):
            send(pack(k, i))

    threads = []
    for s, sock in enumerate(sockets):
        for j in range(per_socket):
            threads.append(nettools.spawn(send_seq, sock, s * per_socket + j))
    return threads


# ---------------------------------------------------------------- namespace


def test_namespace_is_pyzmqs_with_green_classes(ctx):
    import zmq as pyzmq

    assert zmq.Socket is green_zmq.Socket and zmq.Context is green_zmq.Context
    for name in pyzmq.__all__:
        assert hasattr(zmq, name), name
    assert zmq.PUSH == pyzmq.PUSH and zmq.Again is pyzmq.Again and zmq.Frame is pyzmq.Frame
    assert zmq.ZMQError is pyzmq.ZMQError and zmq.zmq_version() == pyzmq.zmq_version()
    assert zmq.error is pyzmq.error  # anything else comes from pyzmq
    assert issubclass(zmq.Socket, pyzmq.Socket) and zmq.Socket is not pyzmq.Socket
    assert zmq.Context is not pyzmq.Context and zmq.Poller is not pyzmq.Poller
    for name in ("proxy", "proxy_steerable", "device", "select"):
        assert getattr(zmq, name) is not getattr(pyzmq, name), name
    s = ctx.socket(zmq.PAIR)
    assert type(s) is zmq.Socket
    assert "nettools.zmq.Socket" in repr(s)
    inst = zmq.Context.instance()
    assert isinstance(inst, zmq.Context) and zmq.Context.instance() is inst
    assert pyzmq.Context.instance() is not inst
    assert type(inst.socket(zmq.PUSH)) is zmq.Socket
    inst.destroy(linger=0)
    assert zmq.Context.instance() is not inst  # a closed singleton is replaced


def test_importing_nettools_does_not_import_pyzmq():
    out = run_isolated(
        """
        import sys
        import nettools, nettools.green
        print("zmq" in sys.modules)
        from nettools import zmq
        print("zmq" in sys.modules, zmq.__name__)
        print("OK")
        """
    )
    assert out.split() == ["False", "True", "nettools.zmq", "OK"]


# --------------------------------------------------------- a million messages


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_million_push_pull_with_many_green_senders_and_receivers(ctx, transport, tmp_path):
    senders, receivers = 4, 4
    per = MILLION // senders
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH, transport, tmp_path)
    check = SeqCheck(senders, per, receivers)

    def receive(r: int) -> None:
        recv = pull.recv
        got = check.got
        while True:
            got(r, recv())

    readers = [nettools.spawn(receive, r) for r in range(receivers)]
    writers = _senders([push], senders, per)
    check.wait(writers, readers, 120)
    check.verify()


@pytest.mark.timeout(150)
def test_million_through_a_green_router_dealer_queue(ctx, tmp_path):
    """Clients (two DEALER sockets, two greenthreads each) -> tcp -> ROUTER | green proxy |
    DEALER -> ipc -> one worker DEALER socket read by four greenthreads."""
    frontend = ctx.socket(zmq.ROUTER)
    backend = ctx.socket(zmq.DEALER)
    front_ep = bind(frontend, "tcp", tmp_path)
    back_ep = bind(backend, "ipc", tmp_path, "backend")
    clients = []
    for _ in range(2):
        c = ctx.socket(zmq.DEALER)
        c.connect(front_ep)
        clients.append(c)
    worker = ctx.socket(zmq.DEALER)
    worker.connect(back_ep)
    receivers = 4
    per = MILLION // 4
    check = SeqCheck(4, per, receivers)
    identities: set[bytes] = set()

    def receive(r: int) -> None:
        recv = worker.recv_multipart
        got = check.got
        while True:
            ident, payload = recv()
            identities.add(ident)
            got(r, payload)

    proxy = nettools.spawn(zmq.proxy, frontend, backend)
    readers = [nettools.spawn(receive, r) for r in range(receivers)]
    writers = _senders(clients, 2, per)
    check.wait(writers, [*readers, proxy], 120)
    check.verify()
    assert len(identities) == 2  # the ROUTER's envelope came through the queue


def test_one_socket_read_and_written_by_several_greenthreads_at_its_high_water_mark(ctx):
    """A DEALER with readers and writers waiting at once: echoes come back while the
    writers sit at SNDHWM, so every wake-up depends on edges another greenthread drained."""
    a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    for s in (a, b):
        s.sndhwm = s.rcvhwm = 10
    b.connect(bind(a, "tcp", None))
    n, per = 3, 3000
    check = SeqCheck(n, per, n)

    def echo() -> None:
        while True:
            b.send(b.recv())

    def receive(r: int) -> None:
        while True:
            check.got(r, a.recv())

    helpers = [nettools.spawn(echo), *(nettools.spawn(receive, r) for r in range(n))]
    writers = _senders([a], n, per)
    check.wait(writers, helpers, 30)
    # Echoes of different writers interleave, so only counts and uniqueness apply.
    assert check.count == n * per
    assert all(all(s) for s in check.seen)
    assert not [e for e in check.errors if e.startswith("duplicate")]


# --------------------------------------------------------------- patterns


def test_req_rep_with_concurrent_clients(ctx):
    rep = ctx.socket(zmq.REP)
    ep = bind(rep, "tcp", None)

    def serve() -> None:
        while True:
            rep.send_string(rep.recv_string().upper())

    def client(i: int) -> list[str]:
        req = ctx.socket(zmq.REQ)
        req.connect(ep)
        out = []
        for j in range(50):
            req.send_string(f"c{i}-{j}")
            out.append(req.recv_string())
        req.close()
        return out

    server = nettools.spawn(serve)
    try:
        with nettools.Timeout(20):
            results = [t.wait() for t in [nettools.spawn(client, i) for i in range(5)]]
    finally:
        server.kill()
    assert results == [[f"C{i}-{j}" for j in range(50)] for i in range(5)]


def test_req_rep_through_the_green_queue_routes_each_reply_home(ctx):
    frontend, backend = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    front_ep, back_ep = bind(frontend, "tcp", None), bind(backend, "tcp", None)

    def worker(w: int) -> None:
        rep = ctx.socket(zmq.REP)
        rep.connect(back_ep)
        while True:
            rep.send_json({"worker": w, "echo": rep.recv_json()})

    def client(i: int) -> set:
        req = ctx.socket(zmq.REQ)
        req.connect(front_ep)
        workers = set()
        for j in range(40):
            req.send_json({"client": i, "n": j})
            reply = req.recv_json()
            assert reply["echo"] == {"client": i, "n": j}
            workers.add(reply["worker"])
        req.close()
        return workers

    helpers = [nettools.spawn(zmq.device, zmq.QUEUE, frontend, backend)]
    helpers += [nettools.spawn(worker, w) for w in range(3)]
    try:
        with nettools.Timeout(20):
            used = set().union(*[t.wait() for t in [nettools.spawn(client, i) for i in range(4)]])
    finally:
        for t in helpers:
            t.kill()
    assert used == {0, 1, 2}  # the DEALER spread requests over every worker


def test_pub_sub_topics(ctx):
    pub = ctx.socket(zmq.XPUB)  # XPUB: the subscription arrives as a message, no sleeping
    ep = bind(pub, "tcp", None)
    sub = ctx.socket(zmq.SUB)
    sub.connect(ep)
    sub.subscribe(b"news")
    with nettools.Timeout(10):
        assert pub.recv() == b"\x01news"
        received = []

        def listen() -> None:
            while True:
                msg = sub.recv_multipart()
                received.append(msg)
                if msg[1] == b"end":
                    return

        listener = nettools.spawn(listen)
        for topic, body in [
            (b"news", b"a"),
            (b"sport", b"b"),
            (b"newsflash", b"c"),
            (b"news", b"end"),
        ]:
            pub.send_multipart([topic, body])
        listener.wait()
    assert received == [[b"news", b"a"], [b"newsflash", b"c"], [b"news", b"end"]]


# ------------------------------------------------------ timeouts and NOBLOCK


def test_rcvtimeo_raises_again_while_the_hub_runs_others(ctx):
    pull = ctx.socket(zmq.PULL)
    bind(pull, "tcp", None)
    pull.rcvtimeo = 100
    ticks = []
    ticker = nettools.spawn(lambda: [(ticks.append(1), nettools.sleep(0.01)) for _ in range(3)])
    with nettools.Timeout(10), pytest.raises(zmq.Again):
        pull.recv()
    assert len(ticks) == 3  # the wait was green
    ticker.wait()
    # RCVTIMEO 0: Again at once, as with pyzmq.
    pull.rcvtimeo = 0
    with pytest.raises(zmq.Again):
        pull.recv_multipart()


def test_sndtimeo_raises_again_at_the_high_water_mark(ctx):
    push = ctx.socket(zmq.PUSH)
    push.sndhwm = 5
    push.sndtimeo = 100
    with nettools.Timeout(10), pytest.raises(zmq.Again):
        push.send(b"x")  # no peer yet: nowhere to queue
    pull = ctx.socket(zmq.PULL)
    pull.rcvhwm = 5
    push.connect(bind(pull, "tcp", None))
    with nettools.Timeout(10), pytest.raises(zmq.Again):
        big = b"x" * 65536
        for _ in range(2000):  # high-water marks and socket buffers fill up; nobody reads
            push.send(big)
    with nettools.Timeout(10), pytest.raises(zmq.Again):
        push.send_json({"a": 1})


def test_noblock_raises_again_without_waiting(ctx, hub):
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    before = hub.switches
    with pytest.raises(zmq.Again):
        pull.recv(zmq.NOBLOCK)
    with pytest.raises(zmq.Again):
        pull.recv_multipart(zmq.DONTWAIT)
    lonely = ctx.socket(zmq.PUSH)  # no peer: nowhere to queue
    with pytest.raises(zmq.Again):
        lonely.send(b"x", zmq.NOBLOCK)
    assert hub.switches == before
    push.send(b"hello")
    with nettools.Timeout(10):
        while pull.poll(10) == 0:
            pass
    assert pull.recv(zmq.NOBLOCK) == b"hello"


# --------------------------------------------------------------- closing


@pytest.mark.parametrize("op", ["recv", "recv_multipart", "send", "poll"])
def test_closing_a_socket_wakes_its_waiter_with_enotsock(ctx, hub, op):
    sock = ctx.socket(zmq.DEALER)  # unconnected: recv and send both wait
    sock.sndhwm = 1
    calls = {
        "recv": sock.recv,
        "recv_multipart": sock.recv_multipart,
        "send": lambda: sock.send(b"x"),
        "poll": lambda: sock.poll(None),
    }
    started = nettools.Event()

    def waiter():
        started.send()
        try:
            calls[op]()
        except zmq.ZMQError as exc:
            return exc
        return "returned"

    t = nettools.spawn(waiter)
    started.wait()
    settle()  # the waiter is now parked on the hub
    fd = sock.getsockopt(zmq.FD)
    assert fd in hub.fds
    sock.close()
    with nettools.Timeout(10):
        exc = t.wait()
    assert isinstance(exc, zmq.ZMQError) and exc.errno == zmq.ENOTSOCK, exc
    assert fd not in hub.fds  # the hub forgot the fd before libzmq let it go


def test_context_term_gives_blocked_greenthreads_eterm(hub):
    c = zmq.Context()
    sock = c.socket(zmq.PULL)
    sock.bind("tcp://127.0.0.1:*")

    def blocked():
        try:
            sock.recv()
        except zmq.ContextTerminated:
            sock.close()
            return "ETERM"

    t = nettools.spawn(blocked)
    settle()
    with nettools.Timeout(10):
        c.term()  # waits in a thread: the blocked greenthread runs meanwhile
        assert t.wait() == "ETERM"
    assert c.closed


# ----------------------------------------------------------------- polling


def test_poller_several_sockets_and_a_timeout(ctx, pipe):
    a_pull, a_push = pair(ctx, zmq.PULL, zmq.PUSH)
    b_pull, b_push = pair(ctx, zmq.PULL, zmq.PUSH)
    r, w = pipe
    poller = zmq.Poller()
    poller.register(a_pull, zmq.POLLIN)
    poller.register(b_pull, zmq.POLLIN)
    poller.register(r, zmq.POLLIN)
    ticks = []
    ticker = nettools.spawn(lambda: [(ticks.append(1), nettools.sleep(0.01)) for _ in range(3)])
    with nettools.Timeout(10):
        assert poller.poll(100) == []  # times out, green: the ticker ran meanwhile
        assert len(ticks) == 3
        ticker.wait()
        nettools.spawn_after(0.05, b_push.send, b"to b")
        assert poller.poll(5000) == [(b_pull, zmq.POLLIN)]
        assert b_pull.recv() == b"to b"
        nettools.spawn_after(0.05, os.write, w, b"!")
        assert poller.poll() == [(r, zmq.POLLIN)]
        os.read(r, 1)
        a_push.send(b"to a")
        b_push.send(b"to b")
        got = {}
        while len(got) < 2:
            got.update(poller.poll(5000))
        assert got == {a_pull: zmq.POLLIN, b_pull: zmq.POLLIN}
        assert zmq.select([a_pull], [a_push], [], 5)[1] == [a_push]
    poller.register(a_push, zmq.POLLOUT)
    assert (a_push, zmq.POLLOUT) in poller.poll(0)


def test_poller_and_recv_on_one_socket_both_wake(ctx):
    """One greenthread polls a socket while another blocks in recv on it."""
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    polled = nettools.spawn(poller.poll, 10_000)
    received = nettools.spawn(pull.recv)
    settle()
    push.send(b"one")
    with nettools.Timeout(10):
        assert received.wait() == b"one"
        assert polled.wait() == [(pull, zmq.POLLIN)]  # woken first, before recv took it
        push.send(b"two")
        assert pull.recv() == b"two"


def test_socket_poll_method(ctx):
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    with nettools.Timeout(10):
        assert pull.poll(50) == 0
        nettools.spawn_after(0.05, push.send, b"x")
        assert pull.poll(5000) == zmq.POLLIN
        assert push.poll(5000, zmq.POLLOUT) == zmq.POLLOUT


# ---------------------------------------------------------------- helpers


def test_string_json_pyobj_multipart_and_serialized_helpers_wait_green(ctx):
    a, b = pair(ctx, zmq.PAIR, zmq.PAIR)
    sent = [
        ("send_string", "recv_string", "grüße"),
        ("send_json", "recv_json", {"a": [1, 2, None]}),
        ("send_pyobj", "recv_pyobj", {"set": {1, 2}}),
        ("send_multipart", "recv_multipart", [b"x", b"", b"z" * 1000]),
    ]
    for send, recv, value in sent:
        # The receiver waits first, so each helper goes through the green wait.
        t = nettools.spawn(getattr(b, recv))
        settle()
        getattr(a, send)(value)
        with nettools.Timeout(10):
            assert t.wait() == value
    t = nettools.spawn(b.recv_serialized, lambda frames: json.loads(frames[0]))
    settle()
    a.send_serialized({"k": 1}, lambda o: [json.dumps(o).encode()])
    with nettools.Timeout(10):
        assert t.wait() == {"k": 1}
    frames = nettools.spawn(b.recv_multipart, copy=False)
    settle()
    a.send_multipart([b"f1", zmq.Frame(b"f2")], copy=False)
    with nettools.Timeout(10):
        assert [f.bytes for f in frames.wait()] == [b"f1", b"f2"]
    buf = bytearray(8)
    t = nettools.spawn(b.recv_into, buf)
    settle()
    a.send(b"into")
    with nettools.Timeout(10):
        assert t.wait() == 4 and bytes(buf[:4]) == b"into"


def test_events_read_by_the_user_does_not_strand_a_waiter(ctx):
    """getsockopt(EVENTS) drains the edge a blocked recv waits for; it must hand it on."""
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    t = nettools.spawn(pull.recv)
    settle()
    push.send(b"x")
    # Wait for the message without letting the hub run (a real sleep): the
    # waiter cannot be woken first, so the user's read is what drains the edge.
    for _ in range(10_000):
        if pull.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            break
        time.sleep(0.001)
    with nettools.Timeout(10):
        assert t.wait() == b"x"
    t = nettools.spawn(pull.recv)
    settle()
    push.send(b"y")
    for _ in range(10_000):
        if pull.events & zmq.POLLIN:  # the attribute form reads it too
            break
        time.sleep(0.001)
    with nettools.Timeout(10):
        assert t.wait() == b"y"


# ------------------------------------------------------------------ proxies


def test_proxy_steerable_pause_resume_statistics_terminate(ctx):
    frontend, backend = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    control, capture = ctx.socket(zmq.REP), ctx.socket(zmq.PAIR)
    src = ctx.socket(zmq.PUSH)
    src.connect(bind(frontend, "tcp", None))
    dst = ctx.socket(zmq.PULL)
    dst.connect(bind(backend, "tcp", None))
    ctl = ctx.socket(zmq.REQ)
    ctl.connect(bind(control, "tcp", None))
    cap = ctx.socket(zmq.PAIR)
    cap.connect(bind(capture, "tcp", None))

    def command(cmd: bytes) -> list[bytes]:
        ctl.send(cmd)
        return ctl.recv_multipart()

    proxy = nettools.spawn(zmq.proxy_steerable, frontend, backend, capture, control)
    with nettools.Timeout(20):
        for i in range(10):
            src.send_multipart([b"m%d" % i, b"x" * i])
        for i in range(10):
            assert dst.recv_multipart() == [b"m%d" % i, b"x" * i]
            assert cap.recv_multipart() == [b"m%d" % i, b"x" * i]
        stats = [struct.unpack("=Q", f)[0] for f in command(b"STATISTICS")]
        size = sum(len(b"m%d" % i) + i for i in range(10))
        assert stats == [10, size, 0, 0, 0, 0, 10, size]
        assert command(b"PAUSE") == [b""]
        src.send(b"held")
        dst.rcvtimeo = 200
        with pytest.raises(zmq.Again):
            dst.recv()  # paused: the message waits in ZeroMQ's queues
        assert command(b"RESUME") == [b""]
        dst.rcvtimeo = -1
        assert dst.recv() == b"held"
        assert command(b"TERMINATE") == [b""]
        assert proxy.wait() is None


def test_proxy_ends_with_the_error_that_stopped_it(ctx):
    frontend, backend = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    bind(frontend, "tcp", None)
    proxy = nettools.spawn(zmq.proxy, frontend, backend)
    settle()
    frontend.close()
    with nettools.Timeout(10), pytest.raises(zmq.ZMQError) as info:
        proxy.wait()
    assert info.value.errno == zmq.ENOTSOCK


# ------------------------------------------------------------ monkey-patched


def test_green_zmq_in_a_monkey_patched_process():
    out = run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        import threading, time
        from nettools import zmq

        ctx = zmq.Context.instance()
        rep = ctx.socket(zmq.REP)
        rep.bind("tcp://127.0.0.1:*")
        ep = rep.getsockopt(zmq.LAST_ENDPOINT).decode()
        ticks = []

        def server():
            for _ in range(3):
                rep.send_string(rep.recv_string()[::-1])

        def ticker():
            for _ in range(5):
                ticks.append(1)
                time.sleep(0.01)

        threads = [threading.Thread(target=server), threading.Thread(target=ticker)]
        for t in threads:
            t.start()
        req = ctx.socket(zmq.REQ)
        req.connect(ep)
        req.rcvtimeo = 10_000
        for word in ("abc", "green", "zmq"):
            req.send_string(word)
            print(req.recv_string())
        for t in threads:
            t.join()
        print(len(ticks), threading.current_thread().name)
        ctx.destroy(linger=0)
        print("OK")
        """
    )
    assert out.split() == ["cba", "neerg", "qmz", "5", "MainThread", "OK"]


def _until_fd_readable(sock: zmq.Socket) -> None:
    """Spin (without letting the hub poll) until libzmq has signalled ``sock``'s mailbox."""
    import select
    import time

    fd = sock.getsockopt(zmq.FD)
    deadline = time.monotonic() + 5
    while not select.select([fd], [], [], 0.01)[0]:
        assert time.monotonic() < deadline, "libzmq never signalled the socket"


def test_a_send_that_drains_the_edge_a_reader_waits_for_wakes_it(ctx):
    """The classic missed wake-up: a recv waits on a DEALER; a message arrives and libzmq
    signals ZMQ_FD; before the hub polls, a send on the same socket processes that command
    (the edge is gone from epoll).  The send must hand the wake-up on."""
    import time

    a, b = pair(ctx, zmq.DEALER, zmq.DEALER)
    b.send(b"warm-up")  # the connection exists, so later sends need no reconnect
    with nettools.Timeout(10):
        assert a.recv() == b"warm-up"
    reader = nettools.spawn(a.recv)
    settle()  # parked on the hub, ZMQ_FD armed
    b.send(b"for the reader")
    _until_fd_readable(a)
    time.sleep(0.005)  # past libzmq's command throttle, so a.send processes commands
    a.send(b"drains the mailbox")
    with nettools.Timeout(5):
        assert reader.wait() == b"for the reader"
        assert b.recv() == b"drains the mailbox"


def test_a_recv_that_drains_the_edge_a_writer_waits_for_wakes_it(ctx):
    """The same, the other way round: a send waits at the high-water mark; the peer reads,
    and libzmq signals "writable"; a failing NOBLOCK recv on the same socket processes
    that command before the hub polls.  (inproc: the peers' pipes meet directly, so the
    signal follows the reads at once.)"""
    a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    a.sndhwm = b.rcvhwm = 2
    b.bind("inproc://drain")
    a.connect("inproc://drain")
    n = 100
    writer = nettools.spawn(lambda: [a.send(b"%d" % i) for i in range(n)])
    settle()  # the writer fills the pipe and parks at the high-water mark
    assert not writer.dead
    got = []
    with nettools.Timeout(5):
        while True:  # empty the pipe without letting the hub poll
            try:
                got.append(b.recv(zmq.NOBLOCK))
            except zmq.Again:
                break
        _until_fd_readable(a)
        with pytest.raises(zmq.Again):
            a.recv(zmq.NOBLOCK)  # drains a's mailbox: the writer's edge is gone
        while len(got) < n:
            got.append(b.recv())
        writer.wait()
    assert got == [b"%d" % i for i in range(n)]


def test_a_send_that_waits_after_draining_a_readers_edge_wakes_the_reader(ctx):
    """A blocking send fails at the high-water mark, having processed the command that
    signalled a message for a parked reader: before the sender parks, it wakes the reader."""
    import time

    a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    a.sndhwm = b.rcvhwm = 2
    b.bind("inproc://drain-then-wait")
    a.connect("inproc://drain-then-wait")
    with pytest.raises(zmq.Again):
        for _ in range(100):
            a.send(b"fill", zmq.NOBLOCK)
    reader = nettools.spawn(a.recv)
    settle()  # parked on the hub, ZMQ_FD armed
    b.send(b"for the reader")
    _until_fd_readable(a)
    time.sleep(0.005)  # past libzmq's command throttle: the next send processes commands
    writer = nettools.spawn(a.send, b"waits at the high-water mark")
    try:
        with nettools.Timeout(5):
            assert reader.wait() == b"for the reader"
        assert not writer.dead  # still parked: nothing read b
    finally:
        writer.kill()


@pytest.mark.parametrize("call", ["bind", "connect", "unbind", "disconnect"])
def test_bind_and_connect_that_drain_a_readers_edge_wake_it(ctx, call):
    """libzmq processes pending commands at the start of bind, connect, unbind and
    disconnect: one made while a recv waits and a message has just been signalled must
    hand the wake-up on.  (inproc endpoints: libzmq's io thread sends nothing back that
    would raise a fresh edge.)"""
    a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    a.bind(f"inproc://drain-{call}")
    b.connect(f"inproc://drain-{call}")
    other = ctx.socket(zmq.DEALER)
    other.bind(f"inproc://other-{call}")
    extra = f"inproc://extra-{call}"
    if call == "unbind":
        a.bind(extra)
    elif call == "disconnect":
        a.connect(f"inproc://other-{call}")
    reader = nettools.spawn(a.recv)
    settle()  # parked on the hub, ZMQ_FD armed
    b.send(b"for the reader")
    _until_fd_readable(a)
    if call in ("bind", "unbind"):
        getattr(a, call)(extra)
    else:
        getattr(a, call)(f"inproc://other-{call}")
    with nettools.Timeout(5):
        assert reader.wait() == b"for the reader"


def test_a_new_socket_on_a_reused_fd_number_is_watched_afresh(ctx, hub):
    """The hub still holds a record for an fd closed behind its back; a new socket whose
    mailbox gets that number must not inherit it (epoll dropped the old registration)."""
    ctx.socket(zmq.PAIR)  # the context starts its own threads and fds first
    r, w = os.pipe()
    token = object()
    hub.watch(r, nettools.kernel.fdwait.READ, token)  # the hub now knows fd r (registered in epoll)
    hub.unwatch(r, nettools.kernel.fdwait.READ, token)
    os.close(r)
    os.close(w)
    pull = ctx.socket(zmq.PULL)
    if pull.getsockopt(zmq.FD) != r:
        pytest.skip("libzmq's mailbox did not get the freed fd number")
    push = ctx.socket(zmq.PUSH)
    push.connect(bind(pull, "tcp", None))
    reader = nettools.spawn(pull.recv)
    settle()
    push.send(b"seen")
    with nettools.Timeout(5):
        assert reader.wait() == b"seen"


def test_a_shadow_socket_and_its_original_wait_side_by_side(ctx):
    """Two socket objects on one libzmq socket share its fd: both still get every wake-up."""
    a, b = pair(ctx, zmq.PAIR, zmq.PAIR)
    got: list[bytes] = []

    def read(sock) -> None:
        for _ in range(100):
            got.append(sock.recv())

    readers = [nettools.spawn(read, a)]
    settle()  # parked on the original
    shadow = zmq.Socket.shadow(a)
    assert type(shadow) is zmq.Socket
    readers.append(nettools.spawn(read, shadow))
    settle()
    with nettools.Timeout(20):
        for i in range(200):
            b.send(b"%d" % i)
            if i % 50 == 0:
                nettools.sleep(0.001)
        for t in readers:
            t.wait()
    assert sorted(got) == sorted(b"%d" % i for i in range(200))


def test_send_multipart_refuses_a_bad_frame_before_sending_any(ctx):
    a, b = pair(ctx, zmq.PAIR, zmq.PAIR)
    with pytest.raises(TypeError, match="Frame 1"):
        a.send_multipart([b"first", "not bytes", b"third"])
    a.send_multipart([b"clean", b"message"])
    a.send_multipart([b"more", b"to come"], zmq.SNDMORE)  # SNDMORE on the last frame too
    a.send(b"end")
    with nettools.Timeout(10):
        assert b.recv_multipart() == [b"clean", b"message"]
        assert b.recv_multipart() == [b"more", b"to come", b"end"]


def test_a_collected_context_terminates_without_switching(hub):
    """Garbage collection can destroy a context anywhere: its term must not switch away."""
    import gc

    c = zmq.Context()
    c.socket(zmq.PUSH).close()
    before = hub.switches
    del c
    gc.collect()
    assert hub.switches == before


def test_term_waits_green_when_called_from_a_greenthread(hub):
    c = zmq.Context()
    c.socket(zmq.PUSH).close()
    before = hub.switches
    c.term()
    assert c.closed and hub.switches > before  # it waited on the hub, not on the thread


def test_poller_waits_for_pollout_at_the_high_water_mark(ctx):
    a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    a.sndhwm = b.rcvhwm = 2
    b.bind("inproc://pollout")
    a.connect("inproc://pollout")
    with pytest.raises(zmq.Again):
        for _ in range(100):
            a.send(b"fill", zmq.NOBLOCK)
    poller = zmq.Poller()
    poller.register(a, zmq.POLLOUT)
    assert poller.poll(0) == []
    nettools.spawn_after(0.05, lambda: [b.recv() for _ in range(4)])
    with nettools.Timeout(10):
        assert poller.poll(5000) == [(a, zmq.POLLOUT)]
    assert zmq.select([], [a], [], 0) == ([], [a], [])


def test_poller_with_a_plain_pyzmq_socket():
    import zmq as pyzmq

    plain = pyzmq.Context()
    try:
        pull = plain.socket(pyzmq.PULL)
        push = plain.socket(pyzmq.PUSH)
        push.connect(bind(pull, "tcp", None))
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        nettools.spawn_after(0.05, push.send, b"plain")
        with nettools.Timeout(10):
            assert poller.poll(5000) == [(pull, zmq.POLLIN)]
        assert pull.recv() == b"plain"
    finally:
        plain.destroy(linger=0)
