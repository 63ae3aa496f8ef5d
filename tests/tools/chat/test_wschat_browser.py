"""The ``nettools wschat`` page in a real headless Chromium (Debian's), driven by
Playwright, against the real CLI server on loopback.

Two browser contexts (separate cookie jars and storage, like two people) join
a room, talk, and see each other in the user list; markup in a message shows
as text and never runs; after the server is stopped and started again on the
same port the pages reconnect by themselves.  A screenshot goes to
``build/test-artifacts/``.

If Chromium is missing the setup installs it (``apt-get install -y chromium``,
through ``sudo -n`` when not root) and skips, saying why, only if it cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from helpers.browser import ARTIFACTS, WAIT_MS, chromium

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

from helpers.cli import Cli  # noqa: E402

# Generous: the first test may install Chromium; every wait below has its own bound.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium(sync_api) as b:
        yield b


class WSChat(Cli):
    def __init__(self, port: int = 0) -> None:
        super().__init__("wschat", "--port", str(port), "--drain-timeout", "5s")
        self.host, self.port = self.tcp_address()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


@pytest.fixture
def people(browser):
    """``open(url, nick, room)``: a page in a context of its own, joined."""
    contexts = []
    dialogs: list[str] = []

    def open_page(url: str, nick: str, room: str = "lobby"):
        ctx = browser.new_context(viewport={"width": 1000, "height": 640})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.fill("#nick", nick)
        page.fill("#room", room)
        page.click("#join-btn")
        expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
        expect(page.locator("#me")).to_have_text(nick, timeout=WAIT_MS)
        return page

    open_page.dialogs = dialogs
    yield open_page
    for ctx in contexts:
        ctx.close()


def users(page) -> list[str]:
    return page.locator("#users li").all_text_contents()


def say(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def last_message(page, nick: str, text: str) -> None:
    """Wait until the newest chat message is ``nick``'s ``text``."""
    newest = page.locator("#messages li.msg").last
    expect(newest.locator(".nick")).to_have_text(nick, timeout=WAIT_MS)
    expect(newest.locator(".text")).to_have_text(text, timeout=WAIT_MS)


def test_two_people_talk_see_each_other_and_markup_stays_text(people):
    with WSChat() as server:
        alice = people(server.url, "alice", "garden")
        bob = people(server.url, "bob", "garden")
        expect(alice.locator("#users li")).to_have_count(2, timeout=WAIT_MS)
        assert users(alice) == users(bob) == ["alice", "bob"]
        expect(alice.locator("#messages li.notice").last).to_contain_text("bob joined")
        expect(alice.locator("#room-name")).to_have_text("garden")

        say(alice, "hello bob")
        last_message(bob, "alice", "hello bob")
        say(bob, "hi alice")
        last_message(alice, "bob", "hi alice")

        attacks = [
            "<script>alert(1)</script>",
            '<img src=x onerror="window.__pwned=1;alert(2)">',
            "<b onmouseover=alert(3)>bold?</b> &amp; &lt;",
        ]
        for text in attacks:
            say(alice, text)
            last_message(bob, "alice", text)  # shown literally, character for character
        for page in (alice, bob):
            injected = page.evaluate(
                "document.querySelectorAll('#messages script, #messages img, #messages b').length"
            )
            assert injected == 0
            assert page.evaluate("typeof window.__pwned") == "undefined"
        assert people.dialogs == []

        # The room list, and a move to another room seen from the one left behind.
        expect(bob.locator("#rooms li")).to_have_count(2, timeout=WAIT_MS)  # garden and lobby
        bob.fill("#new-room", "cellar")
        bob.press("#new-room", "Enter")
        expect(bob.locator("#room-name")).to_have_text("cellar", timeout=WAIT_MS)
        expect(alice.locator("#users li")).to_have_count(1, timeout=WAIT_MS)
        expect(alice.locator("#messages li.notice").last).to_contain_text(
            "bob left (moved to cellar)"
        )
        assert users(bob) == ["bob"]
        # The room list follows comings and goings by itself.
        expect(alice.locator("#rooms li")).to_have_text(
            ["cellar (1)", "garden (1)", "lobby (0)"], timeout=WAIT_MS
        )

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "wschat.png"
        alice.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 1000
        code, _out, err = server.stop()
        assert code == 0, err


def test_pages_reconnect_after_the_server_restarts(people):
    with WSChat() as first:
        port = first.port
        alice = people(first.url, "alice")
        bob = people(first.url, "bob")
        expect(alice.locator("#users li")).to_have_count(2, timeout=WAIT_MS)
        say(alice, "before the restart")
        last_message(bob, "alice", "before the restart")
        code, _out, err = first.stop()
        assert code == 0, err
    for page in (alice, bob):
        # The 1001 close frame: the page knows the server went away, and says
        # so while it keeps trying.
        expect(page.locator("#status")).to_contain_text("server went away", timeout=WAIT_MS)
        expect(page.locator("#status")).to_contain_text("reconnecting in", timeout=WAIT_MS)
        expect(page.locator("#messages li.notice").last).to_have_text(
            re.compile(r"server went away; reconnecting"), timeout=WAIT_MS
        )
    with WSChat(port) as second:
        for page in (alice, bob):
            expect(page.locator("#status")).to_have_attribute(
                "data-state", "online", timeout=WAIT_MS
            )
            expect(page.locator("#users li")).to_have_count(2, timeout=WAIT_MS)
            expect(page.locator("#me")).to_have_text(page is alice and "alice" or "bob")
            expect(page.locator("#room-name")).to_have_text("lobby")
        say(bob, "after the restart")
        last_message(alice, "bob", "after the restart")
        code, _out, err = second.stop()
        assert code == 0, err
