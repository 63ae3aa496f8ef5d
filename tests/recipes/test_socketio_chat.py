"""``recipes/socketio_chat.py`` served by ``nettools serve``, talked to by unmodified
python-socketio clients: one on the websocket transport from the start, one that
starts on long-polling and upgrades."""

from __future__ import annotations

import http.client

import pytest
from helpers.cli import Cli
from helpers.paths import RECIPES, ROOT
from helpers.socketio import ChatClient, T

pytest.importorskip("flask_socketio")
pytest.importorskip("socketio")

pytestmark = pytest.mark.timeout(60)


def _serve(*args: str, env: dict | None = None) -> Cli:
    return Cli(
        "serve", "socketio_chat:app", "--port", "0", *args, cwd=RECIPES,
        env={"PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip


def _get(addr: tuple[str, int], path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*addr, timeout=T)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_rooms_notices_messages_and_users_over_both_transports() -> None:
    with _serve("--access-log", "-") as server:
        host, port = server.tcp_address()
        url = f"http://{host}:{port}"
        ada = ChatClient(url, ["websocket"])
        bob = ChatClient(url, ["polling", "websocket"])
        eve = ChatClient(url, ["websocket"])
        assert ada.transport == bob.transport == "websocket"  # bob upgraded
        assert ada.join("ada", "den")["ok"]
        ada.expect("notice", text="ada joined")
        assert bob.join("bob", "den")["ok"]
        ada.expect("notice", text="bob joined")
        assert ada.expect("users", users=["ada", "bob"])
        assert eve.join("eve", "elsewhere")["ok"]
        assert eve.expect("users", users=["eve"])

        assert bob.say("<b>hello</b> den") == {"ok": True}
        for client in (ada, bob):  # the room, the sender too
            got = client.expect("message", name="bob")
            assert got == {"room": "den", "name": "bob", "text": "<b>hello</b> den"}
        assert eve.say("only here") == {"ok": True}
        assert eve.expect("message", name="eve")["text"] == "only here"
        # Nothing from the other room reached ada or bob: the next message they
        # see is ada's own, right after eve's.
        ada.say("still den")
        for client in (ada, bob):
            assert client.expect("message")["name"] == "ada"

        assert ChatClient(url, ["websocket"]).say("no room") == {
            "ok": False, "error": "join a room first"
        }  # fmt: skip
        bob.close()
        ada.expect("notice", text="bob left")
        ada.expect("users", users=["ada"])
        ada.close()
        eve.close()
        code, _, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
    # bob's session began on long-polling (taken-over websockets are not logged).
    assert "transport=polling" in err


def test_page_and_a_missing_browser_client_say_how_to_get_it(tmp_path) -> None:
    missing = tmp_path / "nowhere.js"
    with _serve(env={"SOCKETIO_CLIENT_JS": str(missing)}) as server:
        addr = server.tcp_address()
        status, page = _get(addr, "/")
        assert status == 200 and b'src="/socket.io.min.js"' in page
        assert b'transports: ["polling", "websocket"]' in page
        status, body = _get(addr, "/socket.io.min.js")
        assert status == 404 and b"npm install socket.io-client@4" in body
        assert str(missing).encode() in body
        server.stop()


def test_a_message_queue_means_websocket_only(tmp_path) -> None:
    """With a queue (several workers) the page asks for websockets only, and the
    server refuses long-polling."""
    env = {"SOCKETIO_MESSAGE_QUEUE": f"unix://{tmp_path}/no-redis-yet.sock"}
    with _serve(env=env) as server:
        addr = server.tcp_address()
        status, page = _get(addr, "/")
        assert status == 200 and b'transports: ["websocket"]' in page
        status, _ = _get(addr, "/socket.io/?EIO=4&transport=polling")
        assert status == 400
        server.stop()

