"""``nettools.tools.zmq.proxy.ZmqProxy`` as a library: the proxy and its peers are
green pyzmq sockets on this thread's hub, over real ZeroMQ on loopback.

ZeroMQ moves messages in its own threads, so a test waits for what a peer
receives (every receive bounded); a message that must *not* arrive is checked
by what arrives after it from the same sender, or by a bounded poll.
"""

from __future__ import annotations

import json

import pytest
from helpers.green import settle
from helpers.zmq import TCP0, control, drain, first_delivery, nothing_within, peer, recv

from nettools import Timeout, spawn
from nettools.green import socket as gsocket
from nettools.green import zmq
from nettools.tools.zmq import EndpointError, parse_endpoint
from nettools.tools.zmq.proxy import ZmqProxy

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def proxy(green_ctx):
    """``proxy(kind, **options)``: a started ``ZmqProxy`` between two port-0 tcp
    endpoints; every one made is stopped afterwards."""
    made: list[ZmqProxy] = []

    def start(kind: str, **options) -> ZmqProxy:
        ends = [parse_endpoint(options.pop(name, TCP0)) for name in ("frontend", "backend")]
        made.append(ZmqProxy(green_ctx, kind, *ends, **options).start())
        return made[-1]

    yield start
    for p in made:
        p.stop()


def test_streamer_forwards_whole_multipart_messages_and_counts_them(proxy, green_ctx):
    p = proxy("streamer")
    assert not p.endpoints["frontend"].endswith(":0")  # the real port
    push = peer(green_ctx, zmq.PUSH, p.endpoints["frontend"])
    pull = peer(green_ctx, zmq.PULL, p.endpoints["backend"])
    sent = [[b"m%d" % i] + [b"x" * i] * (i % 4) for i in range(50)]
    for message in sent:
        push.send_multipart(message)
    assert [recv(pull) for _ in sent] == sent
    flows = p.stats.counts()
    assert flows["frontend_to_backend"] == {
        "messages": 50, "bytes": sum(len(f) for m in sent for f in m)
    }
    assert flows["backend_to_frontend"] == {"messages": 0, "bytes": 0}


def test_queue_carries_requests_and_replies(proxy, green_ctx):
    p = proxy("queue")
    client = peer(green_ctx, zmq.REQ, p.endpoints["frontend"])
    worker = peer(green_ctx, zmq.REP, p.endpoints["backend"])
    for i in range(20):
        client.send_multipart([b"ask", b"%d" % i])
        assert recv(worker) == [b"ask", b"%d" % i]
        worker.send(b"answer %d" % i)
        assert recv(client) == [b"answer %d" % i]
    assert p.stats.frontend_to_backend.messages == 20
    assert p.stats.backend_to_frontend.messages == 20


def test_forwarder_passes_subscriptions_up_and_messages_down(proxy, green_ctx):
    p = proxy("forwarder")
    publisher = peer(green_ctx, zmq.PUB, p.endpoints["frontend"])
    subscriber = peer(green_ctx, zmq.SUB, p.endpoints["backend"])
    subscriber.subscribe(b"news")
    # The subscription has to travel up through the proxy before anything comes down.
    first_delivery(lambda: publisher.send_multipart([b"news", b"probe"]), subscriber)
    drain(subscriber)
    publisher.send_multipart([b"sports", b"not subscribed"])
    publisher.send_multipart([b"news", b"after it"])
    assert recv(subscriber) == [b"news", b"after it"]  # the sports message was filtered
    assert p.stats.backend_to_frontend.messages >= 1  # the subscription itself


def test_capture_gets_a_copy_of_every_message(proxy, green_ctx):
    p = proxy("streamer", capture=parse_endpoint(TCP0))
    push = peer(green_ctx, zmq.PUSH, p.endpoints["frontend"])
    pull = peer(green_ctx, zmq.PULL, p.endpoints["backend"])
    tap = peer(green_ctx, zmq.SUB, p.endpoints["capture"])
    tap.subscribe(b"")
    first_delivery(lambda: push.send(b"probe"), tap)
    drain(tap)
    drain(pull)
    sent = [[b"c%d" % i, b"body"] for i in range(10)]
    for message in sent:
        push.send_multipart(message)
    assert [recv(pull) for _ in sent] == sent
    assert [recv(tap) for _ in sent] == sent
    assert p.stats.captured == p.stats.frontend_to_backend.messages


def test_a_message_its_destination_refuses_is_held_not_lost(proxy, green_ctx):
    # All inproc with high-water marks of 1: the pipes fill at once, and every
    # wake-up comes through the sockets' mailboxes on this hub (settle sees them).
    p = proxy("streamer", frontend="inproc://held-front", backend="inproc://held-back", hwm=1)
    push = peer(green_ctx, zmq.PUSH, "inproc://held-front", sndhwm=1)
    pull = peer(green_ctx, zmq.PULL, "inproc://held-back", rcvhwm=1)  # not reading yet
    sent = [b"m%d" % i for i in range(20)]
    sender = spawn(lambda: [push.send(m) for m in sent])
    settle()
    assert not sender.dead  # everything is full: the proxy holds a refused message
    assert [recv(pull)[0] for _ in sent] == sent  # none lost, in order
    assert p.stats.frontend_to_backend.messages == len(sent)


def test_control_socket_pause_resume_statistics_and_terminate(proxy, green_ctx):
    p = proxy("streamer", control=parse_endpoint(TCP0))
    push = peer(green_ctx, zmq.PUSH, p.endpoints["frontend"])
    pull = peer(green_ctx, zmq.PULL, p.endpoints["backend"])
    ctl = p.endpoints["control"]
    push.send(b"one")
    assert recv(pull) == [b"one"]
    assert control(green_ctx, ctl, "PAUSE") == "OK"
    assert p.paused
    push.send(b"held")
    assert nothing_within(pull)  # waits in ZeroMQ's queues meanwhile
    counts = json.loads(control(green_ctx, ctl, "statistics"))  # any case
    assert counts["paused"] is True and counts["frontend_to_backend"]["messages"] == 1
    assert control(green_ctx, ctl, "RESUME") == "OK"
    assert recv(pull) == [b"held"]
    assert control(green_ctx, ctl, "bogus").startswith("ERROR unknown command 'BOGUS'")
    assert control(green_ctx, ctl, "TERMINATE") == "OK"
    with Timeout(10):
        p.wait()
    assert p.done.ready() and p.frontend.closed and p.backend.closed


def test_pause_and_resume_called_on_the_proxy(proxy, green_ctx):
    p = proxy("streamer")
    push = peer(green_ctx, zmq.PUSH, p.endpoints["frontend"])
    pull = peer(green_ctx, zmq.PULL, p.endpoints["backend"])
    p.pause()
    push.send(b"held")
    assert nothing_within(pull)
    p.resume()
    assert recv(pull, 500) == [b"held"]


def test_stop_ends_the_proxy_and_closes_its_sockets(proxy):
    p = proxy("queue")
    settle()  # the loop is parked in its poll
    assert not p.done.ready()
    p.stop()
    assert p.done.ready()
    assert p.frontend.closed and p.backend.closed
    p.stop()  # again: harmless


def test_a_connect_endpoint_and_an_ipc_endpoint(proxy, green_ctx, tmp_path):
    sink = green_ctx.socket(zmq.PULL)
    sink.bind("tcp://127.0.0.1:*")
    sink_url = sink.getsockopt(zmq.LAST_ENDPOINT).decode()
    front = f"ipc://{tmp_path}/front"
    p = proxy("streamer", frontend=front, backend=f"connect:{sink_url}")
    assert p.endpoints == {"frontend": front, "backend": sink_url}
    push = peer(green_ctx, zmq.PUSH, front)
    push.send(b"through ipc and a connect")
    assert recv(sink) == [b"through ipc and a connect"]
    sink.close()


def test_wrong_endpoints_and_types_fail_at_once(green_ctx):
    tcp0 = parse_endpoint(TCP0)
    with pytest.raises(ValueError, match="unknown proxy type 'nope'"):
        ZmqProxy(green_ctx, "nope", tcp0, tcp0)
    with pytest.raises(EndpointError, match="unknown transport 'bogus'"):
        parse_endpoint("bogus://x")
    with pytest.raises(EndpointError):
        parse_endpoint("no transport")
    taken = gsocket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = parse_endpoint(f"tcp://127.0.0.1:{taken.getsockname()[1]}")
    with taken, pytest.raises(OSError, match="cannot bind"):
        ZmqProxy(green_ctx, "streamer", tcp0, busy)
