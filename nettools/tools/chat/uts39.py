"""Unicode Technical Standard #39 (security mechanisms) for chat names and text:
confusable skeletons, script sets, and the characters that show as nothing.

The data (``data/uts39.json``) is made from ICU at build time and checked
against it at test time (see ``uts39_gen``); nothing here is typed by hand but
the augmented script sets, which UTS #39 section 5.1 defines in its text.
"""

from __future__ import annotations

import bisect
import functools
import json
import unicodedata
from importlib import resources

__all__ = ["unicode_version", "skeleton", "resolved_scripts", "single_script", "ignorable"]

#: Script sets that stand for every script (Common and Inherited characters).
_ANY = ("Zyyy", "Zinh")
#: UTS #39 5.1: Han, Hiragana, Katakana, Hangul and Bopomofo also count as the
#: writing systems that mix them (Japanese, Korean, Han with Bopomofo).
_AUGMENT = {
    "Hani": ("Hanb", "Jpan", "Kore"),
    "Hira": ("Jpan",),
    "Kana": ("Jpan",),
    "Hang": ("Kore",),
    "Bopo": ("Hanb",),
}


class _Tables:
    __slots__ = ("unicode", "confusables", "script_firsts", "script_runs", "ignorable_firsts",
                 "ignorable_runs")

    def __init__(self, data: dict) -> None:
        self.unicode: str = data["unicode"]
        self.confusables: dict[str, str] = data["confusables"]
        self.script_firsts = [run[0] for run in data["scripts"]]
        self.script_runs = [(run[1], _augmented(run[2].split())) for run in data["scripts"]]
        self.ignorable_firsts = [run[0] for run in data["ignorable"]]
        self.ignorable_runs = [run[1] for run in data["ignorable"]]


def _augmented(scripts: list[str]) -> frozenset[str] | None:
    """A character's augmented script set; None: any script."""
    if any(s in _ANY for s in scripts):
        return None
    out = set(scripts)
    for s in scripts:
        out.update(_AUGMENT.get(s, ()))
    return frozenset(out)


@functools.cache
def _tables() -> _Tables:
    text = resources.files(__package__).joinpath("data", "uts39.json").read_text("utf-8")
    return _Tables(json.loads(text))


def unicode_version() -> str:
    """The Unicode version of the data, e.g. ``"15.0"``."""
    return _tables().unicode


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of ``text``: NFD, each character replaced by its
    prototype, NFD again.  Two strings that look alike have one skeleton."""
    table = _tables().confusables
    nfd = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(table.get(ch, ch) for ch in nfd))


def _scripts_of(ch: str) -> frozenset[str] | None:
    t = _tables()
    cp = ord(ch)
    i = bisect.bisect_right(t.script_firsts, cp) - 1
    if i >= 0:
        last, scripts = t.script_runs[i]
        if cp <= last:
            return scripts
    return frozenset()  # unassigned: no script at all


def resolved_scripts(text: str) -> frozenset[str] | None:
    """The scripts ``text`` could be written in (UTS #39 5.1, the resolved
    script set); None: any (only Common and Inherited characters)."""
    resolved: frozenset[str] | None = None
    for ch in text:
        scripts = _scripts_of(ch)
        if scripts is not None:
            resolved = scripts if resolved is None else resolved & scripts
    return resolved


def single_script(text: str) -> bool:
    """Whether ``text`` is written in one script (Common characters such as
    digits and punctuation go with any)."""
    resolved = resolved_scripts(text)
    return resolved is None or bool(resolved)


def ignorable(ch: str) -> bool:
    """Whether ``ch`` is a Default_Ignorable_Code_Point: shown as nothing
    (bidi controls, zero-width characters, fillers, variation selectors, tags)."""
    t = _tables()
    cp = ord(ch)
    i = bisect.bisect_right(t.ignorable_firsts, cp) - 1
    return i >= 0 and cp <= t.ignorable_runs[i]
