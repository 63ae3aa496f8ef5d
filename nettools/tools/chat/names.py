"""The rules for nicknames and room names, shared by the chats and the bus.

A name is 1-32 letters, digits or ``_-.[]{}|^`'``; names compare casefolded.
A server that must rename a user (two servers gave one nickname away at once)
picks the first free ``name_2``, ``name_3``... cut to fit the length limit.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

__all__ = ["NAME_MAX", "NAME_PUNCTUATION", "NAME_RULE", "valid_name", "free_name"]

#: Longest nickname or room name, in characters.
NAME_MAX = 32
#: The characters other than letters and digits a name may hold.
NAME_PUNCTUATION = "_-.[]{}|^`'"
#: What ``valid_name`` accepts, in words for the users told a name is refused.
NAME_RULE = f"1-{NAME_MAX} letters, digits or {NAME_PUNCTUATION}"

_PUNCTUATION = frozenset(NAME_PUNCTUATION)


def valid_name(name: str) -> bool:
    """A nickname or room name: 1-32 letters, digits or ``_-.[]{}|^`'``."""
    return 0 < len(name) <= NAME_MAX and all(ch.isalnum() or ch in _PUNCTUATION for ch in name)


def free_name(name: str, taken: Callable[[str], bool]) -> str:
    """A valid name like ``name`` (``name_2``, ``name_3``...) for which
    ``taken(candidate)`` is false; a random ``user_...`` if all of those are."""
    for n in range(2, 1000):
        suffix = f"_{n}"
        candidate = name[: NAME_MAX - len(suffix)] + suffix
        if not taken(candidate):
            return candidate
    return "user_" + secrets.token_hex(6)
