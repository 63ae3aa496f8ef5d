"""What a request brings back: ``Response`` and its case-insensitive ``Headers``."""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

__all__ = ["Response", "Headers"]


class Headers(Mapping[str, str]):
    """Response headers: a read-only mapping with case-insensitive names.

    A name that came more than once maps to its values joined by ", ".
    """

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, tuple[str, str]] | None = None) -> None:
        self._items = items if items is not None else {}  # lower name -> (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The value of header ``name``, or ``default`` (one dict look-up: a
        crawl asks each response for several headers)."""
        item = self._items.get(name.lower())
        return default if item is None else item[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass
class Response:
    """A complete HTTP response (body already read, decoded and capped)."""

    url: str
    final_url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False
    redirects: list[tuple[int, str]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def content_type(self) -> str:
        """The mime type, lower case, without parameters ('' if none)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The charset named by Content-Type, if any."""
        value = self.headers.get("Content-Type", "")
        if not value:
            return None
        msg = Message()
        msg["Content-Type"] = value
        cs = msg.get_param("charset")
        return cs.strip() if isinstance(cs, str) and cs.strip() else None

    def text(self) -> str:
        """The body decoded with the headers' charset, else UTF-8 (bad bytes replaced)."""
        encoding = "utf-8"
        cs = self.charset
        if cs:
            try:
                encoding = codecs.lookup(cs).name
            except LookupError:
                pass
        return self.body.decode(encoding, errors="replace")
