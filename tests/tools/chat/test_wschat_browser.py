"""The ``nettools wschat`` page in a real headless Chromium (Debian's), driven by
Playwright, against the real CLI server on loopback.

Two browser contexts (separate cookie jars and storage, like two people) join
a room, talk, and see each other in the user list; markup in a message shows
as text and never runs; after the server is stopped and started again on the
same port the pages reconnect by themselves, keep the conversation on screen
and re-sync it from the history without duplicates; on a 390 px phone the
rooms and the users open as drawers.  Screenshots go to
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

    def open_page(url: str, nick: str, room: str = "lobby", phone: bool = False, route=None):
        if phone:  # an iPhone 12/13/14's CSS viewport
            ctx = browser.new_context(viewport={"width": 390, "height": 844},
                                      device_scale_factor=3, is_mobile=True, has_touch=True)
        else:
            ctx = browser.new_context(viewport={"width": 1000, "height": 640})
        contexts.append(ctx)
        page = ctx.new_page()
        if route is not None:
            page.route_web_socket(re.compile(r".*/chat$"), route)
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
            # The new server has no history: the conversation on screen stays.
            assert messages(page) == ["alice: before the restart"]
        say(bob, "after the restart")
        last_message(alice, "bob", "after the restart")
        for page in (alice, bob):
            expect(page.locator("#messages li.msg")).to_have_count(2, timeout=WAIT_MS)
            assert messages(page) == ["alice: before the restart", "bob: after the restart"]
        code, _out, err = second.stop()
        assert code == 0, err


def messages(page) -> list[str]:
    """The chat messages on screen, as "nick: text"."""
    return page.evaluate("""Array.from(document.querySelectorAll('#messages li.msg'), li =>
        li.querySelector('.nick').textContent + ': ' + li.querySelector('.text').textContent)""")


def test_on_a_phone_rooms_and_users_are_drawers(people):
    with WSChat() as server:
        alice = people(server.url, "alice", phone=True)
        bob = people(server.url, "bob")
        expect(alice.locator("#users-toggle")).to_have_text("Users (2)", timeout=WAIT_MS)
        say(bob, "hello phone")
        last_message(alice, "bob", "hello phone")
        # Nothing sticks out sideways, and the panels wait behind their toggles.
        assert alice.evaluate("document.documentElement.scrollWidth") <= 390
        for panel in ("#rooms-panel", "#users-panel"):
            expect(alice.locator(panel)).to_be_hidden()
        for toggle in ("#rooms-toggle", "#users-toggle", "#text", "#leave"):
            box = alice.locator(toggle).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, toggle

        alice.click("#users-toggle")
        expect(alice.locator("#users-panel")).to_be_in_viewport(ratio=1)
        expect(alice.locator("#users-toggle")).to_have_attribute("aria-expanded", "true")
        expect(alice.locator("#users li")).to_have_text(["alice", "bob"])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        alice.screenshot(path=str(ARTIFACTS / "wschat-phone-users.png"))
        alice.click("#backdrop", position={"x": 20, "y": 400})  # outside the drawer
        expect(alice.locator("#users-panel")).to_be_hidden()

        alice.click("#rooms-toggle")
        expect(alice.locator("#rooms-panel")).to_be_in_viewport(ratio=1)
        alice.fill("#new-room", "kitchen")
        alice.press("#new-room", "Enter")
        expect(alice.locator("#room-name")).to_have_text("kitchen", timeout=WAIT_MS)
        expect(alice.locator("#rooms-panel")).to_be_hidden()  # choosing a room closes it
        alice.click("#rooms-toggle")
        expect(alice.locator("#rooms-panel")).to_be_in_viewport(ratio=1)
        alice.locator("#rooms li button", has_text="lobby").click()
        expect(alice.locator("#room-name")).to_have_text("lobby", timeout=WAIT_MS)
        say(alice, "back from the kitchen")
        last_message(bob, "alice", "back from the kitchen")
        alice.screenshot(path=str(ARTIFACTS / "wschat-phone.png"))
        assert (ARTIFACTS / "wschat-phone.png").stat().st_size > 1000
        code, _out, err = server.stop()
        assert code == 0, err


def test_a_dropped_connection_resyncs_without_duplicates(people):
    # The test drops alice's websocket itself (Playwright sits between the page
    # and the server); the server stays up, so its history has every message.
    routes: list = []

    def route(ws_route) -> None:
        routes.append((ws_route, ws_route.connect_to_server()))

    with WSChat() as server:
        alice = people(server.url, "alice", route=route)
        bob = people(server.url, "bob")
        expect(alice.locator("#users li")).to_have_count(2, timeout=WAIT_MS)
        say(alice, "one")
        last_message(bob, "alice", "one")
        say(bob, "two")
        last_message(alice, "bob", "two")

        page_side, server_side = routes[-1]
        page_side.close(code=4000, reason="test")
        server_side.close(code=4000, reason="test")
        expect(alice.locator("#status")).not_to_have_attribute("data-state", "online",
                                                               timeout=WAIT_MS)
        say(bob, "three")  # while alice is away: she gets it from the history
        expect(alice.locator("#status")).to_have_attribute("data-state", "online",
                                                           timeout=WAIT_MS)
        expect(alice.locator("#messages li.msg")).to_have_count(3, timeout=WAIT_MS)
        assert messages(alice) == ["alice: one", "bob: two", "bob: three"]
        say(bob, "four")
        last_message(alice, "bob", "four")
        assert messages(alice) == ["alice: one", "bob: two", "bob: three", "bob: four"]
        code, _out, err = server.stop()
        assert code == 0, err
