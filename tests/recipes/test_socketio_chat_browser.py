"""``recipes/socketio_chat.py`` in a real headless Chromium (Debian's), driven by
Playwright: the official socket.io JavaScript client (the npm package, fetched
with ``npm pack`` and served by the app) in two browser contexts, like two
people, who join a room and see each other's messages over the websocket
transport.  A screenshot goes to ``build/test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.browser import ARTIFACTS, WAIT_MS, chromium
from helpers.cli import Cli
from helpers.paths import RECIPES, ROOT
from helpers.socketio import fetch_client_js

pytest.importorskip("flask_socketio")
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

# Generous: the first test may install Chromium or npm; every wait has its own bound.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium(sync_api) as b:
        yield b


@pytest.fixture(scope="module")
def client_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fetch_client_js(tmp_path_factory.mktemp("socketio-client"))


def _open(browser, url: str, name: str, room: str):
    ctx = browser.new_context(viewport={"width": 900, "height": 600})
    page = ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    # Connected, and upgraded from long-polling to the websocket transport.
    expect(page.locator("#status")).to_have_attribute("data-transport", "websocket")
    page.fill("#name", name)
    page.fill("#room", room)
    page.click("#join")
    expect(page.locator("body")).to_have_attribute("data-room", room)
    return ctx, page


def _say(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_two_people_chat_in_a_room_over_websockets(browser, client_js: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "SOCKETIO_CLIENT_JS": str(client_js)}
    with Cli("serve", "socketio_chat:app", "--port", "0", cwd=RECIPES, env=env) as server:
        host, port = server.tcp_address()
        url = f"http://{host}:{port}/"
        alice_ctx, alice = _open(browser, url, "alice", "garden")
        bob_ctx, bob = _open(browser, url, "bob", "garden")
        try:
            for page in (alice, bob):
                expect(page.locator("#users li")).to_have_text(["alice", "bob"])
            expect(alice.locator("#messages li.notice").last).to_have_text("bob joined")

            _say(alice, "hello <b>bob</b>")
            for page in (alice, bob):
                newest = page.locator("#messages li.msg").last
                expect(newest.locator(".name")).to_have_text("alice")
                expect(newest.locator(".text")).to_have_text("hello <b>bob</b>")  # as text
            _say(bob, "hi alice")
            expect(alice.locator("#messages li.msg").last.locator(".text")).to_have_text(
                "hi alice"
            )
            for page in (alice, bob):  # still on websockets after the conversation
                expect(page.locator("#status")).to_have_attribute("data-transport", "websocket")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            alice.screenshot(path=str(ARTIFACTS / "socketio_chat.png"), full_page=True)

            bob_ctx.close()  # bob closes his browser: alice sees him leave
            expect(alice.locator("#messages li.notice").last).to_have_text("bob left")
            expect(alice.locator("#users li")).to_have_text(["alice"])
        finally:
            alice_ctx.close()
            if not bob.is_closed():
                bob_ctx.close()
        code, _, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err and "ERROR" not in err, err
