"""From a request target to a path under the served directory, and nothing outside it.

A target's path is percent-decoded once, split on ``/``, and its dot segments
removed as RFC 3986 does (``/a/../b`` is ``/b``); a ``..`` that would climb
above the root is refused, whether it came written plainly or encoded
(``%2e%2e``, ``%2E%2e%2f``).  A NUL byte is refused.  Nothing is ever decoded
twice: ``%252e%252e`` names a file called ``%2e%2e``.

Symbolic links are followed only where they stay inside the root (the real
path of the file must lie under the real path of the root), unless
``follow_symlinks`` allows them to lead anywhere.  Names starting with a dot
(``.git``, ``.env``) are not served or listed unless ``hidden`` is set;
``.well-known`` is served either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote_from_bytes, unquote_to_bytes

__all__ = ["BadTarget", "Located", "Root", "split_target", "url_path"]

#: A dot-name served even when hidden names are not (RFC 8615).
WELL_KNOWN = ".well-known"


class BadTarget(ValueError):
    """A request target that names no path under the root (answered with 400)."""


@dataclass(frozen=True)
class Located:
    """Where a request's path leads: ``path`` on disk, the decoded URL segments
    (as file names) and whether the URL path ended in ``/``."""

    path: str
    segments: tuple[str, ...]
    slash: bool


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """A request target -> ``(path, query)``; an absolute-form target
    (``http://host/path``) gives its path.  Raises ``BadTarget``."""
    if target[:1] != b"/":
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise BadTarget("the request target must be a path")
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"#")[0].partition(b"?")
    return path, query


def url_path(segments: tuple[str, ...] | list[str], slash: bool) -> str:
    """The percent-encoded URL path of ``segments`` (one leading ``/``, so never
    a ``//host`` reference), with a trailing ``/`` if ``slash``."""
    text = "/" + "/".join(quote_from_bytes(os.fsencode(s), safe="") for s in segments)
    return text + "/" if slash and segments else text


class Root:
    """The served directory and the policy for what under it may be served."""

    def __init__(self, directory: str, *, follow_symlinks: bool = False,
                 hidden: bool = False) -> None:
        if not os.path.isdir(directory):
            raise ValueError(f"not a directory: {directory}")
        self.directory = os.path.abspath(directory)
        self.real = os.path.realpath(self.directory)
        self.follow_symlinks = follow_symlinks
        self.hidden = hidden

    def locate(self, raw_path: bytes) -> Located | None:
        """The path a target's path names, or None when the policy refuses it
        (a hidden name).  Raises ``BadTarget`` for a path that climbs above the
        root or holds a NUL byte."""
        decoded = unquote_to_bytes(raw_path)
        if b"\0" in decoded:
            raise BadTarget("NUL byte in the path")
        segments: list[bytes] = []
        for segment in decoded.split(b"/"):
            if segment == b"..":
                if not segments:
                    raise BadTarget("the path climbs above the root")
                segments.pop()
            elif segment and segment != b".":
                segments.append(segment)
        slash = decoded.endswith(b"/") or decoded.endswith(b"/.") or decoded.endswith(b"/..")
        names = tuple(os.fsdecode(s) for s in segments)
        if not self.hidden and any(self.is_hidden(name) for name in names):
            return None
        return Located(os.path.join(self.directory, *names), names, slash or not names)

    def is_hidden(self, name: str) -> bool:
        """Whether a file name is hidden by the policy."""
        return not self.hidden and name.startswith(".") and name != WELL_KNOWN

    def contains(self, path: str) -> bool:
        """Whether ``path`` (which exists) may be served: its real path lies
        under the root's, or symbolic links may lead anywhere."""
        if self.follow_symlinks:
            return True
        real = os.path.realpath(path)
        return real == self.real or real.startswith(self.real.rstrip("/") + "/")
