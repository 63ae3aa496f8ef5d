"""The index page of a directory without an index file.

Every name is HTML-escaped in the text and percent-encoded in its link (a name
may hold ``<``, ``&``, quotes, ``#``, ``?`` or bytes that are not UTF-8), so a
file's name can never inject markup or point a link elsewhere.  Entries the
server would refuse (hidden names, links leading out of the root) are left
out.  Directories come first, each with a trailing ``/``.
"""

from __future__ import annotations

import html
import os
import stat
import time
from collections.abc import Callable

from .paths import url_path

__all__ = ["render_listing"]

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Index of {title}</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:0 1em 0 0}}
td.n{{text-align:right}}</style></head>
<body><h1>Index of {title}</h1>
<table>
{rows}</table>
</body></html>
"""


def render_listing(
    directory: str, segments: tuple[str, ...], allowed: Callable[[str, str], bool]
) -> bytes:
    """The HTML index of ``directory``, reached by the URL path ``segments``.
    ``allowed(name, path)`` says whether an entry may be shown."""
    entries: list[tuple[bool, str, int, float]] = []
    with os.scandir(directory) as it:
        for entry in it:
            if not allowed(entry.name, entry.path):
                continue
            try:
                st = entry.stat()  # follows links: show what a request would get
            except OSError:
                continue  # a dangling link
            is_dir = stat.S_ISDIR(st.st_mode)
            if not is_dir and not stat.S_ISREG(st.st_mode):
                continue
            entries.append((is_dir, entry.name, st.st_size, st.st_mtime))
    entries.sort(key=lambda e: (not e[0], e[1]))
    rows = []
    if segments:
        rows.append('<tr><td><a href="../">../</a></td><td></td><td></td></tr>\n')
    for is_dir, name, size, mtime in entries:
        href = url_path((name,), is_dir)[1:]  # relative: the page's URL ends in "/"
        shown = html.escape(_shown(name) + ("/" if is_dir else ""))
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
        rows.append(
            f'<tr><td><a href="{html.escape(href)}">{shown}</a></td>'
            f'<td class="n">{"-" if is_dir else size}</td><td>{when}</td></tr>\n'
        )
    title = html.escape(("/" + "/".join(_shown(s) for s in segments) + "/") if segments else "/")
    return _PAGE.format(title=title, rows="".join(rows)).encode("utf-8")


def _shown(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 shown as U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")
