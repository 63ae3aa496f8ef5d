"""``nettools zmq proxy`` through the real entry point, with real ZeroMQ.

The proxy runs as a subprocess; the test's peers are plain (blocking) pyzmq
sockets, every receive bounded by a poll.  ZeroMQ's subscriptions reach a
publisher some time after a subscriber connects, so a test that needs one
publishes probes until the first arrives (bounded in count), then checks the
messages that matter.
"""

from __future__ import annotations

import json
import select
import signal

import pytest
import zmq

pytestmark = pytest.mark.timeout(60)

from helpers.cli import Cli, run_cli, stop_summary  # noqa: E402
from helpers.zmq import (  # noqa: E402
    TCP0,
    control,
    drain,
    first_delivery,
    nothing_within,
    peer,
    recv,
)


class Proxy(Cli):
    """``nettools zmq proxy`` in a subprocess; killed on leaving the ``with``."""

    def __init__(self, *args: str) -> None:
        super().__init__("zmq", "proxy", *args)

    def ready(self, timeout: float = 20) -> dict:
        event = super().ready(timeout)
        assert event["service"] == "zmq-proxy"
        return event

    def stderr_event(self, wanted: str, timeout: float = 20) -> dict:
        """The next JSON line on stderr whose "event" is ``wanted``."""
        for _ in range(100):
            readable, _, _ = select.select([self.proc.stderr], [], [], timeout)
            assert readable, f"no {wanted!r} line on stderr within {timeout}s"
            line = self.proc.stderr.readline()
            assert line, "stderr closed"
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == wanted:
                    return event
        raise AssertionError(f"no {wanted!r} line on stderr")


# ---------------------------------------------------------------- the three types


def test_queue_carries_requests_and_replies(ctx):
    with Proxy("--type", "queue", "--frontend", TCP0, "--backend", TCP0) as proxy:
        ready = proxy.ready()
        assert ready["type"] == "queue"
        assert ready["address"] == ready["frontend"]
        assert not ready["frontend"].endswith(":0") and not ready["backend"].endswith(":0")
        client = peer(ctx, zmq.REQ, ready["frontend"])
        worker = peer(ctx, zmq.REP, ready["backend"])
        for i in range(20):
            client.send_multipart([b"ask", str(i).encode()])
            assert recv(worker) == [b"ask", str(i).encode()]
            worker.send_multipart([b"answer", str(i).encode()])
            assert recv(client) == [b"answer", str(i).encode()]
        code, _, err = proxy.stop()
    assert code == 0
    counts = stop_summary(err, "zmq-proxy")
    assert counts["frontend_to_backend"]["messages"] == 20
    assert counts["backend_to_frontend"]["messages"] == 20


def test_forwarder_over_ipc_passes_subscriptions_up_and_messages_down(ctx, tmp_path):
    front, back = f"ipc://{tmp_path}/front", f"ipc://{tmp_path}/back"
    with Proxy("--type", "forwarder", "--frontend", front, "--backend", back) as proxy:
        ready = proxy.ready()
        assert (ready["frontend"], ready["backend"]) == (front, back)
        publisher = peer(ctx, zmq.PUB, front)
        subscriber = peer(ctx, zmq.SUB, back)
        subscriber.subscribe(b"news")
        # The subscription has to travel up through the proxy before anything comes down.
        got = first_delivery(lambda: publisher.send_multipart([b"news", b"probe"]), subscriber)
        assert got == [b"news", b"probe"]
        drain(subscriber)
        publisher.send_multipart([b"sport", b"not for us"])
        publisher.send_multipart([b"news", b"one", b"three frames"])
        assert recv(subscriber) == [b"news", b"one", b"three frames"]
        code, _, err = proxy.stop()
    assert code == 0
    counts = stop_summary(err, "zmq-proxy")
    # Upstream: the subscription itself ("\x01news").
    assert counts["backend_to_frontend"]["messages"] >= 1
    assert counts["backend_to_frontend"]["bytes"] >= len(b"\x01news")


def test_streamer_pushes_to_pullers(ctx):
    with Proxy("--type", "streamer", "--frontend", TCP0,
               "--backend", "tcp://127.0.0.1:*") as proxy:
        ready = proxy.ready()
        assert ready["backend"].startswith("tcp://127.0.0.1:")
        assert ready["backend"].rpartition(":")[2].isdigit()
        pusher = peer(ctx, zmq.PUSH, ready["frontend"])
        puller = peer(ctx, zmq.PULL, ready["backend"])
        for i in range(50):
            pusher.send_multipart([b"job", str(i).encode()])
        assert [recv(puller) for _ in range(50)] == [
            [b"job", str(i).encode()] for i in range(50)
        ]
        code, _, _ = proxy.stop()
    assert code == 0


# ---------------------------------------------------------------- capture and control


def test_capture_gets_a_copy_of_every_message(ctx):
    with Proxy("--type", "streamer", "--frontend", TCP0, "--backend", TCP0,
               "--capture", TCP0) as proxy:
        ready = proxy.ready()
        pusher = peer(ctx, zmq.PUSH, ready["frontend"])
        puller = peer(ctx, zmq.PULL, ready["backend"])
        tap = peer(ctx, zmq.SUB, ready["capture"])
        tap.subscribe(b"")
        first_delivery(lambda: (pusher.send(b"probe"), recv(puller)), tap)
        drain(tap)
        sent = [[b"m", str(i).encode(), b"x" * i] for i in range(30)]
        for message in sent:
            pusher.send_multipart(message)
        assert [recv(puller) for _ in sent] == sent
        assert [recv(tap) for _ in sent] == sent
        code, _, err = proxy.stop()
    assert code == 0
    counts = stop_summary(err, "zmq-proxy")
    assert counts["captured"] == counts["frontend_to_backend"]["messages"]


def test_control_pause_resume_and_terminate(ctx):
    with Proxy("--type", "streamer", "--frontend", TCP0, "--backend", TCP0,
               "--control", TCP0) as proxy:
        ready = proxy.ready()
        pusher = peer(ctx, zmq.PUSH, ready["frontend"])
        puller = peer(ctx, zmq.PULL, ready["backend"])
        pusher.send(b"before")
        assert recv(puller) == [b"before"]

        assert control(ctx, ready["control"], "PAUSE") == "OK"
        pusher.send(b"while paused")
        assert nothing_within(puller)
        stats = json.loads(control(ctx, ready["control"], "STATISTICS"))
        assert stats["paused"] is True
        assert stats["frontend_to_backend"]["messages"] == 1

        assert control(ctx, ready["control"], "RESUME") == "OK"
        assert recv(puller) == [b"while paused"]
        assert control(ctx, ready["control"], "bogus").startswith("ERROR")

        assert control(ctx, ready["control"], "TERMINATE") == "OK"
        out, err = proxy.proc.communicate(timeout=20)
    assert proxy.proc.returncode == 0
    assert stop_summary(err, "zmq-proxy")["frontend_to_backend"]["messages"] == 2


def test_statistics_are_exact(ctx):
    """DEALER peers on both sides: the proxy sees exactly the frames sent plus
    the client's routing id, which the frontend ROUTER adds."""
    with Proxy("--type", "queue", "--frontend", TCP0, "--backend", TCP0,
               "--control", TCP0) as proxy:
        ready = proxy.ready()
        ident = b"client-7"
        client = peer(ctx, zmq.DEALER, ready["frontend"], routing_id=ident)
        worker = peer(ctx, zmq.DEALER, ready["backend"])
        n = 40
        forward = back = 0
        for i in range(n):
            request = [b"q" * (i + 1), b"", b"payload-%d" % i]
            client.send_multipart(request)
            got = recv(worker)
            assert got == [ident, *request]
            forward += sum(map(len, got))
            reply = [ident, b"r" * (2 * i)]
            worker.send_multipart(reply)
            assert recv(client) == reply[1:]
            back += sum(map(len, reply))
        stats = json.loads(control(ctx, ready["control"], "STATISTICS"))
        assert stats["frontend_to_backend"] == {"messages": n, "bytes": forward}
        assert stats["backend_to_frontend"] == {"messages": n, "bytes": back}
        assert stats["paused"] is False

        proxy.proc.send_signal(signal.SIGUSR1)
        event = proxy.stderr_event("stats")
        assert event["service"] == "zmq-proxy"
        assert event["frontend_to_backend"] == {"messages": n, "bytes": forward}

        code, _, err = proxy.stop()
    assert code == 0
    final = stop_summary(err, "zmq-proxy")
    assert final["frontend_to_backend"] == {"messages": n, "bytes": forward}
    assert final["backend_to_frontend"] == {"messages": n, "bytes": back}


def test_sigterm_while_idle_exits_cleanly():
    with Proxy("--type", "forwarder", "--frontend", TCP0, "--backend", TCP0) as proxy:
        proxy.ready()
        code, out, err = proxy.stop()
    assert code == 0
    assert "Traceback" not in err
    counts = stop_summary(err, "zmq-proxy")
    assert counts["frontend_to_backend"] == {"messages": 0, "bytes": 0}


def test_a_full_backend_holds_messages_and_control_still_answers(ctx):
    """A PUSH backend without a peer refuses messages: the proxy holds one,
    stops reading, keeps answering its control socket, and delivers them all
    once a puller comes."""
    with Proxy("--type", "streamer", "--frontend", TCP0, "--backend", TCP0,
               "--control", TCP0, "--hwm", "10") as proxy:
        ready = proxy.ready()
        pusher = peer(ctx, zmq.PUSH, ready["frontend"])
        for i in range(5):
            pusher.send(b"%d" % i)
        stats = json.loads(control(ctx, ready["control"], "STATISTICS"))
        assert stats["frontend_to_backend"]["messages"] == 0
        puller = peer(ctx, zmq.PULL, ready["backend"])
        assert [recv(puller) for _ in range(5)] == [[b"%d" % i] for i in range(5)]
        code, _, _ = proxy.stop()
    assert code == 0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "frontend",
    ["foo://x", "tcp://", "127.0.0.1:5555", "tcp://127.0.0.1", "tcp://no-such-host.invalid:1"],
)
def test_bad_endpoint_is_a_usage_error(frontend):
    result = run_cli("zmq", "proxy", "--type", "queue", "--frontend", frontend,
                     "--backend", TCP0)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nettools zmq proxy"), result.stderr
    assert result.stdout == ""


def test_unknown_type_is_a_usage_error():
    result = run_cli("zmq", "proxy", "--type", "broker", "--frontend", TCP0,
                     "--backend", TCP0)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_address_in_use_is_a_runtime_error(ctx):
    taken = ctx.socket(zmq.PULL)
    taken.bind(TCP0)
    endpoint = taken.LAST_ENDPOINT.decode()
    result = run_cli("zmq", "proxy", "--type", "streamer", "--frontend", TCP0,
                     "--backend", endpoint)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "address already in use" in lines[0].lower(), result.stderr
    taken.close()


def test_connect_endpoints_and_environment_settings(ctx):
    """Both sides may connect; options come from NETTOOLS_* too."""
    upstream = ctx.socket(zmq.PUSH)
    upstream.linger = 0
    upstream.bind(TCP0)
    downstream = ctx.socket(zmq.PULL)
    downstream.bind(TCP0)
    up, down = upstream.LAST_ENDPOINT.decode(), downstream.LAST_ENDPOINT.decode()
    with Cli("zmq", "proxy", "--frontend", f"connect:{up}", "--backend", f"connect:{down}",
             env={"NETTOOLS_TYPE": "streamer"}) as proxy:
        ready = proxy.ready()
        assert (ready["frontend"], ready["backend"]) == (up, down)
        upstream.send(b"through")
        assert recv(downstream) == [b"through"]
        code, _, _ = proxy.stop()
    assert code == 0


# ---------------------------------------------------------------- the library, in one process


def test_proxy_library_in_process_with_green_peers():
    """ZmqProxy without the CLI: green REQ clients and REP workers in greenthreads
    of this process talk through it while its loop waits on the same hub."""
    from nettools import spawn
    from nettools.green import zmq as gzmq
    from nettools.tools.zmq import parse_endpoint
    from nettools.tools.zmq.proxy import ProxyStats, ZmqProxy

    context = gzmq.Context()
    stats = ProxyStats()
    device = ZmqProxy(context, "queue", parse_endpoint("inproc://front"),
                      parse_endpoint("inproc://back"), stats=stats).start()
    try:
        def worker() -> None:
            rep = context.socket(gzmq.REP)
            rep.connect(device.endpoints["backend"])
            try:
                while True:
                    rep.send(rep.recv().upper())
            except gzmq.ZMQError:
                pass  # closed with the context
            finally:
                rep.close(0)

        def client(name: bytes) -> list[bytes]:
            req = context.socket(gzmq.REQ)
            req.connect(device.endpoints["frontend"])
            try:
                answers = []
                for i in range(50):
                    req.send(b"%s-%d" % (name, i))
                    answers.append(req.recv())
                return answers
            finally:
                req.close(0)

        workers = [spawn(worker) for _ in range(2)]
        clients = {name: spawn(client, name) for name in (b"a", b"b", b"c")}
        for name, gt in clients.items():
            assert gt.wait() == [b"%s-%d" % (name.upper(), i) for i in range(50)]
        assert stats.frontend_to_backend.messages == 150
        assert stats.backend_to_frontend.messages == 150
    finally:
        device.stop()
        for gt in workers:
            gt.kill()
        context.term()
    assert device.done.ready()
