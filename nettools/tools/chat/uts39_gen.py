"""Builds ``data/uts39.json``, the Unicode data behind the chats' name rules.

The data comes from ICU (through PyICU), the reference implementation of
Unicode Technical Standard #39; it is made at build time, shipped as a file,
and checked at test time: the tests run ``build()`` against the installed ICU
and compare.  PyICU is needed only here, never at run time (it has to be
compiled against ICU, which would cost every user a C++ build).

``confusables``
    For every character that is its own NFD: its UTS #39 skeleton, where that
    differs from the character (the prototypes of ``confusables.txt``).
``scripts``
    ``[first, last, "Latn Grek ..."]``: the Script_Extensions of each range
    of assigned code points (ISO 15924 codes; Common is ``Zyyy``, Inherited
    ``Zinh``).
``ignorable``
    ``[first, last]``: the Default_Ignorable_Code_Point ranges -- what a
    terminal or a page shows as nothing (bidi controls, zero-width
    characters, fillers, tags...).

Run ``python -m nettools.tools.chat.uts39_gen`` (with PyICU installed) to
write the file anew after an ICU upgrade.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["build", "dump", "data_path"]


def data_path() -> Path:
    """Where the shipped file lives in the source tree."""
    return Path(str(resources.files("nettools.tools.chat").joinpath("data", "uts39.json")))


def _ranges(values: list[Any]) -> list[list]:
    """``[first, last, value]`` runs of equal non-None ``values[cp]``."""
    runs: list[list] = []
    for cp, value in enumerate(values):
        if value is None:
            continue
        if runs and runs[-1][1] == cp - 1 and runs[-1][2] == value:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp, value])
    return runs


def build() -> dict:
    """The data, from the ICU that PyICU is built on."""
    import icu  # noqa: PLC0415 - build and test time only

    checker = icu.SpoofChecker()
    nfd = icu.Normalizer2.getNFDInstance()
    unassigned = icu.UCharCategory.UNASSIGNED
    ignorable_prop = icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT
    confusables: dict[str, str] = {}
    scripts: list[str | None] = []
    ignorable: list[bool | None] = []
    for cp in range(0x110000):
        ignorable.append(True if icu.Char.hasBinaryProperty(cp, ignorable_prop) else None)
        if 0xD800 <= cp <= 0xDFFF or icu.Char.charType(cp) == unassigned:
            scripts.append(None)
            continue
        scx = sorted(icu.Script(code).getShortName() for code in icu.Script.getScriptExtensions(cp))
        scripts.append(" ".join(scx))
        ch = chr(cp)
        if nfd.normalize(ch) == ch:
            skeleton = checker.getSkeleton(0, ch)
            if skeleton != ch:
                confusables[ch] = skeleton
    return {
        "source": "ICU " + icu.ICU_VERSION,
        "unicode": icu.UNICODE_VERSION,
        "confusables": confusables,
        "scripts": _ranges(scripts),
        "ignorable": [run[:2] for run in _ranges(ignorable)],
    }


def dump(data: dict) -> str:
    """The file's text: one JSON object, UTF-8, one table entry a line."""
    lines = ["{"]
    lines.append(f' "source": {json.dumps(data["source"])},')
    lines.append(f' "unicode": {json.dumps(data["unicode"])},')
    items = [f"  {json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}"
             for k, v in data["confusables"].items()]
    lines.append(' "confusables": {\n' + ",\n".join(items) + "\n },")
    runs = [f"  {json.dumps(r)}" for r in data["scripts"]]
    lines.append(' "scripts": [\n' + ",\n".join(runs) + "\n ],")
    runs = [f"  {json.dumps(r)}" for r in data["ignorable"]]
    lines.append(' "ignorable": [\n' + ",\n".join(runs) + "\n ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else data_path()
    path.write_text(dump(build()), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
