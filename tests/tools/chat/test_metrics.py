"""``nettools chat --metrics`` and ``nettools wschat --metrics``: users, rooms,
messages, limits, and why connections ended."""

from __future__ import annotations

import pytest
from helpers.chat import LineClient, WSClient
from helpers.cli import Cli
from helpers.metrics import scrape
from helpers.sockets import parse_address

pytestmark = pytest.mark.timeout(60)


def test_line_chat_metrics():
    with Cli("chat", "--metrics", "127.0.0.1:0", "--max-line", "64") as srv:
        ready = srv.ready()
        addr = parse_address(ready["address"])
        alice, bob = LineClient(addr), LineClient(addr)
        alice.join("alice")
        bob.join("bob", others=("alice",))
        alice.skip_to("*** bob joined lobby")
        bob.send("/join den")
        bob.skip_to("*** You are in den, alone")
        alice.skip_to("*** bob left lobby (joined den)")
        alice.send("hello")
        alice.send("again")
        alice.sync()
        rude = LineClient(addr)
        rude.send("x" * 100)
        assert b"Line longer than 64 bytes" in rude.rest()
        rude.close()

        m = scrape(ready["metrics"])
        assert m.value("nettools_chat_users", service="chat") == 2
        assert m.value("nettools_chat_rooms") == 2
        assert m.value("nettools_chat_messages_total") == 2
        assert m.value("nettools_connections_active") == 2
        assert m.labels("nettools_connections_closed_total", "reason") == {"limit": 1}
        assert m.labels("nettools_errors_total", "kind") == {"line_too_long": 1}
        assert m.value("nettools_received_bytes_total") > 100
        alice.close()
        bob.close()
        assert srv.stop()[0] == 0


def test_browser_chat_metrics_count_rate_limits():
    with Cli("wschat", "--port", "0", "--metrics", "127.0.0.1:0", "--rate", "0.01",
             "--burst", "2") as srv:  # fmt: skip
        ready = srv.ready()
        carol = WSClient(f"ws://{ready['address']}/chat")
        carol.join("carol")
        carol.send(type="say", text="one")  # the join and this: the burst of two
        carol.expect("message", text="one")
        carol.send(type="say", text="two")  # over the rate
        carol.expect("error", code="rate-limited")  # and so it has been counted

        m = scrape(ready["metrics"])
        assert m.value("nettools_chat_users", service="wschat") == 1
        assert m.value("nettools_chat_messages_total") == 1
        assert m.value("nettools_chat_rate_limited_total") == 1
        assert m.value("nettools_chat_refused_total") == 1
        assert m.value("nettools_connections_active") == 1
        carol.close()
        assert srv.stop()[0] == 0
