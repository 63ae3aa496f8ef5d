"""The chats' name rules and text safety on Unicode's security data (UTS #39):
look-alike nicknames clash, mixed scripts and invisible characters are refused,
and text shown to others carries no invisible characters.

The shipped data is checked against ICU (PyICU), the reference implementation
of UTS #39: it must be what ``uts39_gen`` makes from the installed ICU, and
the skeletons computed from it must be ICU's own.
"""

from __future__ import annotations

import json
import random
import unicodedata

import pytest

from nettools.tools.chat import uts39
from nettools.tools.chat.bus_presence import Presence, Roster
from nettools.tools.chat.names import NameIndex, name_keys, name_problem, normal_name
from nettools.tools.chat.safetext import show_invisible
from nettools.tools.chat.uts39_gen import build, data_path

icu = pytest.importorskip("icu")  # the [test] extra installs it


def test_the_shipped_data_is_what_icu_makes():
    shipped = json.loads(data_path().read_text("utf-8"))
    assert shipped["unicode"] == icu.UNICODE_VERSION, "regenerate: python -m " \
        "nettools.tools.chat.uts39_gen"
    assert shipped == build()
    assert uts39.unicode_version() == icu.UNICODE_VERSION


def test_skeletons_are_icus():
    checker = icu.SpoofChecker()
    rng = random.Random(39)
    table = json.loads(data_path().read_text("utf-8"))["confusables"]
    pool = list(table) + [chr(c) for c in range(0x20, 0x250)]
    samples = ["alice", "аlice", "ａｌｉｃｅ", "alıce", "paypal", "раураl", "rn", "m", "é",
               "e\u0301"]
    samples += ["".join(rng.choice(pool) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    for text in samples:
        assert uts39.skeleton(text) == unicodedata.normalize("NFD", checker.getSkeleton(0, text)), \
            ascii(text)


@pytest.mark.parametrize("look_alike", [
    "alice", "ALICE", "Alice", "аlice", "ａｌｉｃｅ", "alıce", "aIice", "аlісе",
])
def test_look_alikes_of_a_name_have_a_key_in_common(look_alike):
    assert set(name_keys(normal_name(look_alike))) & set(name_keys("alice"))


@pytest.mark.parametrize("different", ["alicia", "bob", "a1ice_", "alice2"])
def test_different_names_do_not_clash(different):
    assert not set(name_keys(different)) & set(name_keys("alice"))


@pytest.mark.parametrize(("typed", "problem"), [
    ("аlice", "letters of different scripts may not be mixed"),  # Cyrillic а in Latin
    ("bob\u202e", "invisible characters are not allowed"),
    ("\u3164", "invisible characters are not allowed"),  # a Hangul filler: a blank name
    ("b\u200bob", "invisible characters are not allowed"),
    ("two words", "use 1-32 letters"),
    ("x" * 33, "use 1-32 letters"),
])
def test_refused_names(typed, problem):
    assert problem in name_problem(normal_name(typed))


@pytest.mark.parametrize("name", [
    "alice", "Zoë", "Ελένη", "Дмитрий", "山田たろう", "김민준", "user_42", "[afk]bob", "ａｌｉｃｅ",
])
def test_accepted_names(name):
    assert name_problem(normal_name(name)) is None


def test_the_name_index_finds_holders_by_look_alikes():
    index = NameIndex()
    index.add("alice", "A")
    index.add("Ilona", "I")
    assert index.holder("ALICE") == "A" and index.holder("alıce") == "A"
    assert index.holder("llona") == "I"  # two small L look like a capital I and an l
    assert index.holder("bob") is None
    index.remove("alice", "someone else")  # only the holder's own entry goes
    assert index.holder("alice") == "A"
    index.remove("alice", "A")
    assert index.holder("alice") is None


def test_the_bus_knows_look_alikes_of_other_servers_users():
    presence = Presence("me", Roster())

    class Quiet:
        def __getattr__(self, name):
            return lambda *args: None

    presence.listener = Quiet()
    peer = presence.heard_from("them", "alive", 0.0)
    presence.joined(peer, "alice", "lobby", 1.0, 1.0)
    assert presence.nick_taken("alıce") and presence.nick_taken("ALICE")
    presence.left(peer, "alice", "", None, 2.0)
    assert not presence.nick_taken("alıce")


def test_invisible_characters_are_shown_and_joiners_in_words_kept():
    assert show_invisible("abc\u202edef") == "abc<U+202E>def"
    assert show_invisible("\u200bhidden") == "<U+200B>hidden"
    assert show_invisible("tag\U000e0041") == "tag<U+E0041>"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert show_invisible(family) == family
    assert show_invisible("\u263a\ufe0f") == "\u263a\ufe0f"
    assert show_invisible(" \u200d ") == " <U+200D> "
    assert show_invisible("plain ascii") == "plain ascii"
