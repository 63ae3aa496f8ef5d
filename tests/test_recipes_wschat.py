"""``recipes/websocket_chat.py`` run as a program, talked to by the unmodified
``websockets`` client library and the stdlib's HTTP client."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(60)

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "websocket_chat.py"
T = 10


def test_help_describes_the_recipe():
    res = subprocess.run(
        [sys.executable, str(RECIPE), "--help"], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0 and "--port" in res.stdout and "broadcasts" in res.stdout


def test_websocket_chat_recipe_broadcasts_and_stops_with_1001():
    proc = subprocess.Popen(
        [sys.executable, str(RECIPE), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no listening line"
        event = json.loads(proc.stdout.readline())
        assert event["event"] == "listening" and event["service"] == "websocket-chat"
        host, port = event["address"].rsplit(":", 1)

        page = http.client.HTTPConnection(host, int(port), timeout=T)
        page.request("GET", "/")
        resp = page.getresponse()
        body = resp.read()
        assert resp.status == 200 and b"new WebSocket" in body and b"textContent" in body
        page.close()

        with contextlib.ExitStack() as stack:
            url = f"ws://{event['address']}/chat"
            a = stack.enter_context(connect(url, open_timeout=T, proxy=None))
            b = stack.enter_context(connect(url, open_timeout=T, proxy=None))
            a.send("hello from a")
            assert a.recv(timeout=T) == "hello from a"  # everyone, the sender too
            assert b.recv(timeout=T) == "hello from a"
            b.send("<b>hi</b>")
            assert a.recv(timeout=T) == "<b>hi</b>"
            assert b.recv(timeout=T) == "<b>hi</b>"

            proc.send_signal(signal.SIGTERM)
            for ws in (a, b):
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=T)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
