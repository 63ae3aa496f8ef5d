"""A chat bus that meets a message over its size cap drops that message and
stays on the bus (libzmq's own cap would have cut its connection for good).

In one process on the hub: the test's green PUB socket binds, and the bus's
SUB socket connects to it, as a chat server's connects to a forwarder.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from nettools.green import zmq
from nettools.kernel.queue import Empty, Queue
from nettools.tools.chat.bus import ChatBus

pytestmark = pytest.mark.timeout(60)

T = 20  # seconds any single wait may take


class Heard:
    """A chat server's side of the bus that queues the messages it hears."""

    def __init__(self) -> None:
        self.said: Queue = Queue()

    def bus_said(self, room: str, nick: str, text: str, ts: float, action: bool) -> None:
        self.said.put(text)

    def bus_joined(self, *args) -> None:
        pass

    bus_left = bus_renamed = bus_rename_local = bus_joined


def say(text: str) -> list[bytes]:
    obj = {"v": 1, "server": "elsewhere", "kind": "say", "ts": time.time(),
           "room": "lobby", "nick": "ghost", "text": text}
    return [b"chat/lobby", json.dumps(obj).encode()]


def test_an_oversized_message_costs_that_message_only(caplog):
    ctx = zmq.Context()
    try:
        feed = ctx.socket(zmq.PUB)
        feed.linger = 0
        feed.bind("tcp://127.0.0.1:0")
        sink = ctx.socket(zmq.SUB)  # where the bus publishes; nobody reads it
        sink.linger = 0
        sink.bind("tcp://127.0.0.1:0")
        bus = ChatBus(sink.LAST_ENDPOINT.decode(), feed.LAST_ENDPOINT.decode(),
                      heartbeat=0.2, expiry=3, max_message=4096)
        heard = Heard()
        bus.attach(heard)
        bus.start()
        try:
            # The subscription reaches the PUB some time after the SUB connects.
            for i in range(400):
                feed.send_multipart(say(f"probe {i}"))
                try:
                    heard.said.get(timeout=0.02)
                    break
                except Empty:
                    pass
            else:
                raise AssertionError("the bus never heard a probe")
            feed.send_multipart(say("marker"))
            for _ in range(400):
                if heard.said.get(timeout=T) == "marker":
                    break

            with caplog.at_level(logging.WARNING, logger="nettools.chatbus"):
                feed.send_multipart(say("x" * (1 << 20)))  # 1 MiB
                feed.send_multipart(say("y" * 5000))  # just over the cap
                feed.send_multipart(say("after"))
                assert heard.said.get(timeout=T) == "after"
            assert bus.stats.oversized == 2 and bus.stats.malformed == 0
            warnings = [r.getMessage() for r in caplog.records if "size cap" in r.getMessage()]
            assert len(warnings) == 1  # the second within ten seconds is only counted
            assert "dropped 1 message(s) over the size cap of 4096 bytes" in warnings[0]
        finally:
            bus.stop()
    finally:
        ctx.destroy(0)
