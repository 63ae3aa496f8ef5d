"""recipes/zmq_chat.py run as two programs on a real forwarder (``nettools zmq
proxy --type forwarder``), with plain TCP clients on each node."""

from __future__ import annotations

import json
import select

import pytest
from helpers.chat import LineClient
from helpers.cli import Cli
from helpers.paths import RECIPES
from helpers.recipes import Recipe

pytestmark = pytest.mark.timeout(60)

T = 20


def next_event(recipe: Recipe) -> dict:
    """The recipe's next JSON line on stdout."""
    ready, _, _ = select.select([recipe.proc.stdout], [], [], T)
    assert ready, "no line from the recipe"
    return json.loads(recipe.proc.stdout.readline())


def test_recipe_has_a_docstring_and_help():
    text = (RECIPES / "zmq_chat.py").read_text()
    assert text.startswith('"""') and "Run it:" in text
    with Recipe("zmq_chat.py", "--help") as recipe:
        code, out, _err = recipe.wait()
    assert code == 0 and "--pub" in out


def test_two_nodes_on_a_forwarder_pass_lines_between_their_clients():
    with Cli("zmq", "proxy", "--type", "forwarder", "--frontend", "tcp://127.0.0.1:0",
             "--backend", "tcp://127.0.0.1:0") as proxy:
        ready = proxy.ready()
        bus = ("--pub", ready["frontend"], "--sub", ready["backend"])
        with Recipe("zmq_chat.py", "--port", "0", *bus) as one, \
                Recipe("zmq_chat.py", "--port", "0", *bus) as two:
            addr_one, addr_two = one.tcp_address(), two.tcp_address()
            node_one, node_two = next_event(one)["node"], next_event(two)["node"]
            ann = LineClient(addr_one)
            ben = LineClient(addr_two)
            cid = LineClient(addr_two)
            try:
                for client, node in ((ann, node_one), (ben, node_two), (cid, node_two)):
                    assert client.readline().endswith(f"on node {node}")
                ann.send("hello from one")
                for client in (ben, cid):
                    line = client.readline()
                    assert line.startswith(f"[{node_one}] ") and line.endswith(": hello from one")
                ben.send("hi from two")
                line = cid.readline()  # a client on the same node, at once
                assert line.startswith(f"[{node_two}] ") and line.endswith(": hi from two")
                # Ann's next line is Ben's, not her own echoed back by the bus.
                line = ann.readline()
                assert line.startswith(f"[{node_two}] ") and line.endswith(": hi from two")
            finally:
                for client in (ann, ben, cid):
                    client.close()
            for recipe in (one, two):
                code, _out, err = recipe.stop()
                assert code == 0, err
                assert "Traceback" not in err

