"""The rules for nicknames and room names, shared by the chats and the bus.

A name is 1-32 letters, digits or ``_-.[]{}|^`'``, written in one script
(digits and punctuation go with any), with no invisible characters.  What a
user types is normalised first (``normal_name``: NFKC, so fullwidth
``ａｌｉｃｅ`` is ``alice``).

Two nicknames clash when they look alike (``name_keys``): when their UTS #39
confusable skeletons are equal, compared casefolded or as typed -- so with
``alice`` online, ``ALICE``, ``аlice`` (a Cyrillic а), ``alıce`` (a dotless ı)
and ``aIice`` (a capital I) are all taken.  A server that must rename a user
(two servers gave one nickname away at once) picks the first free ``name_2``,
``name_3``... cut to fit the length limit.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Callable
from typing import Any

from .uts39 import ignorable, single_script, skeleton

__all__ = [
    "NAME_MAX",
    "NAME_PUNCTUATION",
    "NAME_RULE",
    "normal_name",
    "name_problem",
    "valid_name",
    "name_keys",
    "NameIndex",
    "free_name",
]

#: Longest nickname or room name, in characters.
NAME_MAX = 32
#: The characters other than letters and digits a name may hold.
NAME_PUNCTUATION = "_-.[]{}|^`'"
#: What ``valid_name`` accepts, in words for the users told a name is refused.
NAME_RULE = f"1-{NAME_MAX} letters, digits or {NAME_PUNCTUATION}, in one script"

_PUNCTUATION = frozenset(NAME_PUNCTUATION)


def normal_name(text: str) -> str:
    """What a user typed as a name, normalised (NFKC) and stripped."""
    return unicodedata.normalize("NFKC", text).strip()


def name_problem(name: str) -> str | None:
    """Why ``name`` (normalised already) is no valid name, in a few words; None
    if it is one."""
    if any(ignorable(ch) for ch in name):
        return "invisible characters are not allowed"
    if not (0 < len(name) <= NAME_MAX and all(ch.isalnum() or ch in _PUNCTUATION for ch in name)):
        return f"use {NAME_RULE}"
    if unicodedata.normalize("NFKC", name) != name:
        return "not in normal form (NFKC)"
    if not single_script(name):
        return "letters of different scripts may not be mixed"
    return None


def valid_name(name: str) -> bool:
    """A nickname or room name by the rules above (``name`` normalised already)."""
    return name_problem(name) is None


def name_keys(name: str) -> tuple[str, ...]:
    """What ``name`` is compared on: its skeleton casefolded, and as typed
    (``aIice`` with a capital I looks like ``alice`` only before casefolding)."""
    nfkc = unicodedata.normalize("NFKC", name)
    folded = skeleton(unicodedata.normalize("NFKC", nfkc.casefold()))
    plain = skeleton(nfkc)
    return (folded,) if plain == folded else (folded, plain)


class NameIndex:
    """Who holds which name, found by the name or any look-alike of it."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[str, Any] = {}

    def holder(self, name: str) -> Any:
        """Whoever holds ``name`` or a look-alike of it; None if nobody does."""
        for key in name_keys(name):
            held = self._by_key.get(key)
            if held is not None:
                return held
        return None

    def add(self, name: str, holder: Any) -> None:
        for key in name_keys(name):
            self._by_key.setdefault(key, holder)

    def remove(self, name: str, holder: Any) -> None:
        for key in name_keys(name):
            if self._by_key.get(key) is holder:
                del self._by_key[key]


def free_name(name: str, taken: Callable[[str], bool]) -> str:
    """A valid name like ``name`` (``name_2``, ``name_3``...) for which
    ``taken(candidate)`` is false; a random ``user_...`` if all of those are."""
    for n in range(2, 1000):
        suffix = f"_{n}"
        candidate = name[: NAME_MAX - len(suffix)] + suffix
        if not taken(candidate):
            return candidate
    return "user_" + secrets.token_hex(6)
