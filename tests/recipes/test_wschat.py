"""``recipes/websocket_chat.py`` run as a program, talked to by the unmodified
``websockets`` client library and the stdlib's HTTP client."""

from __future__ import annotations

import contextlib
import http.client
import signal

import pytest
from helpers.recipes import Recipe, run_recipe
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(60)

RECIPE = "websocket_chat.py"
T = 10


def test_help_describes_the_recipe():
    res = run_recipe(RECIPE, "--help")
    assert res.returncode == 0 and "--port" in res.stdout and "broadcasts" in res.stdout


def test_websocket_chat_recipe_broadcasts_and_stops_with_1001():
    with Recipe(RECIPE, "--host", "127.0.0.1", "--port", "0") as recipe:
        host, port = recipe.tcp_address()
        assert recipe.ready_event["service"] == "websocket-chat"

        page = http.client.HTTPConnection(host, port, timeout=T)
        page.request("GET", "/")
        resp = page.getresponse()
        body = resp.read()
        assert resp.status == 200 and b"new WebSocket" in body and b"textContent" in body
        page.close()

        with contextlib.ExitStack() as stack:
            url = f"ws://{recipe.ready_event['address']}/chat"
            a = stack.enter_context(connect(url, open_timeout=T, proxy=None))
            b = stack.enter_context(connect(url, open_timeout=T, proxy=None))
            a.send("hello from a")
            assert a.recv(timeout=T) == "hello from a"  # everyone, the sender too
            assert b.recv(timeout=T) == "hello from a"
            b.send("<b>hi</b>")
            assert a.recv(timeout=T) == "<b>hi</b>"
            assert b.recv(timeout=T) == "<b>hi</b>"

            recipe.proc.send_signal(signal.SIGTERM)
            for ws in (a, b):
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=T)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        code, _out, err = recipe.wait(20)
        assert code == 0, err
        assert "stopped" in err
