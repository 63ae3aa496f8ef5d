"""Text from one user made safe to show to the others, on a terminal or a page.

Invisible characters (Unicode's Default_Ignorable_Code_Point: bidi controls
such as U+202E, which reorder what follows; zero-width spaces; fillers; tag
characters) are shown as visible text, ``<U+202E>``, so nobody can reverse,
hide or smuggle text in front of another user.  Two stay, where they join or
select the glyphs of visible characters and hide nothing: a zero-width joiner
or non-joiner between two visible characters (emoji sequences, Indic and
Persian writing), and a variation selector right after a visible character.
"""

from __future__ import annotations

from .uts39 import ignorable

__all__ = ["show_invisible"]

_JOINERS = frozenset("\u200c\u200d")


def _variation_selector(ch: str) -> bool:
    cp = ord(ch)
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def show_invisible(text: str) -> str:
    """``text`` with its invisible characters written out as ``<U+XXXX>``."""
    if text.isascii():
        return text  # the common case; nothing in ASCII is default-ignorable
    out: list[str] = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ignorable(ch):
            visible_before = i > 0 and not ignorable(text[i - 1]) and not text[i - 1].isspace()
            if ch in _JOINERS:
                keep = (visible_before and i < last and not ignorable(text[i + 1])
                        and not text[i + 1].isspace())
            else:
                keep = _variation_selector(ch) and visible_before
            if not keep:
                out.append(f"<U+{ord(ch):04X}>")
                continue
        out.append(ch)
    return "".join(out)
