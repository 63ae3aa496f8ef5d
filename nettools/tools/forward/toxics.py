"""Toxics: the faults a proxy can put on one direction of its connections.

Toxiproxy's own model and JSON shape (``name``, ``type``, ``stream``,
``toxicity``, ``attributes``), so its clients work unchanged:

* ``latency`` (``latency``, ``jitter``: ms): every chunk arrives that much later;
* ``bandwidth`` (``rate``: KB/s, 1 KB = 1000 bytes; 0: no limit);
* ``slow_close`` (``delay``: ms): the end of the stream comes that much later;
* ``timeout`` (``timeout``: ms): no data passes, and the connection closes after
  ``timeout`` (0: never).  Unlike Toxiproxy, which throws the stopped data
  away, the data waits and flows on if the toxic is removed in time: what a
  healed partition looks like to TCP;
* ``reset_peer`` (``timeout``: ms): on the first data after it takes effect,
  wait ``timeout`` and abort the connection with a TCP reset both ways;
* ``slicer`` (``average_size``, ``size_variation``: bytes, ``delay``: µs): the
  stream goes out in small writes;
* ``limit_data`` (``bytes``): that direction carries exactly ``bytes`` bytes,
  then the connection closes.

``stream`` is ``upstream`` (client to target) or ``downstream`` (the default);
``toxicity`` (0..1, default 1) is the chance that the toxic applies to a given
connection.  What a toxic does to the bytes is ``faults``' business; this
module holds the definitions, their checks and their spellings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ForwardError

__all__ = ["TOXIC_TYPES", "STREAMS", "Toxic", "toxic_from_json", "parse_toxic_option",
           "TOXIC_OPTION_SYNTAX"]

#: Each toxic type and its attributes with their defaults (all whole numbers >= 0).
TOXIC_TYPES: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
}
#: Toxiproxy's names for the two directions: index 0 is client to target.
STREAMS = ("upstream", "downstream")

TOXIC_OPTION_SYNTAX = "TYPE[@upstream|@downstream][:ATTR=N,...,toxicity=P,name=N,rule=R]"


@dataclass
class Toxic:
    """One toxic on a proxy.  ``attributes`` always holds every attribute of
    the type; ``static`` marks one given on the command line or in a rules
    file (a reload of the file replaces those, and leaves the API's alone)."""

    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, int] = field(default_factory=dict)
    static: bool = False

    @property
    def way(self) -> int:
        """0 for upstream (client to target), 1 for downstream."""
        return STREAMS.index(self.stream)

    def to_json(self) -> dict[str, Any]:
        """Toxiproxy's JSON shape."""
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    def updated(self, data: Mapping[str, Any]) -> Toxic:
        """A copy with ``data``'s ``attributes`` (merged) and ``toxicity`` applied,
        as Toxiproxy's update does: name, type and stream stay."""
        if not isinstance(data, Mapping):
            raise ForwardError("bad request body: expected a JSON object")
        attributes = dict(self.attributes)
        attributes.update(_attributes(self.type, data.get("attributes", {}), partial=True))
        toxicity = _toxicity(data.get("toxicity", self.toxicity))
        return Toxic(self.name, self.type, self.stream, toxicity, attributes, self.static)

    def same_as(self, other: Toxic) -> bool:
        """Whether ``other`` defines the same toxic (its origin aside)."""
        return self.to_json() == other.to_json()


def toxic_from_json(data: Any, *, static: bool = False) -> Toxic:
    """A ``Toxic`` from Toxiproxy's JSON shape; ``ForwardError`` (400) naming
    what is wrong, worded as Toxiproxy words it."""
    if not isinstance(data, Mapping):
        raise ForwardError("bad request body: expected a JSON object")
    kind = data.get("type")
    stream = data.get("stream", "downstream")
    if stream not in STREAMS:
        raise ForwardError("stream was invalid, can be either upstream or downstream")
    if kind not in TOXIC_TYPES:
        raise ForwardError("invalid toxic type")
    name = data.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise ForwardError("bad request body: name must be a string")
    attributes = dict(TOXIC_TYPES[kind])
    attributes.update(_attributes(kind, data.get("attributes", {})))
    return Toxic(name, kind, stream, _toxicity(data.get("toxicity", 1.0)), attributes, static)


def _attributes(kind: str, given: Any, partial: bool = False) -> dict[str, int]:
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ForwardError("bad request body: attributes must be a JSON object")
    known = TOXIC_TYPES[kind]
    out = {}
    for key, value in given.items():
        if key not in known:
            names = ", ".join(known)
            raise ForwardError(f"bad request body: {kind} has no attribute {key!r} ({names})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ForwardError(f"bad request body: {key} must be a whole number")
        if isinstance(value, float):
            if not value.is_integer():
                raise ForwardError(f"bad request body: {key} must be a whole number")
            value = int(value)
        if value < 0:
            raise ForwardError(f"bad request body: {key} cannot be negative")
        out[key] = value
    return out


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ForwardError("bad request body: toxicity must be a number")
    if not 0 <= value <= 1:
        raise ForwardError("bad request body: toxicity must be between 0 and 1")
    return float(value)


def parse_toxic_option(text: str) -> tuple[str | None, Toxic]:
    """``latency:latency=100,jitter=10``, ``timeout@upstream:timeout=500,rule=db``
    -> ``(rule name or None for every rule, Toxic)``; ``ValueError`` saying why."""
    head, _, tail = text.strip().partition(":")
    kind, _, stream = head.partition("@")
    data: dict[str, Any] = {"type": kind.strip(), "stream": stream.strip() or "downstream"}
    attributes: dict[str, Any] = {}
    rule = None
    for item in filter(None, (part.strip() for part in tail.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"invalid toxic {text!r}: {item!r} is not KEY=VALUE "
                             f"(use {TOXIC_OPTION_SYNTAX})")
        if key == "name":
            data["name"] = value
        elif key == "rule":
            rule = value
        else:
            try:
                number: float = float(value) if key == "toxicity" else int(value)
            except ValueError:
                raise ValueError(f"invalid toxic {text!r}: {key} must be a number") from None
            if key == "toxicity":
                data["toxicity"] = number
            else:
                attributes[key] = number
    data["attributes"] = attributes
    try:
        return rule, toxic_from_json(data, static=True)
    except ForwardError as exc:
        raise ValueError(f"invalid toxic {text!r}: {exc} (use {TOXIC_OPTION_SYNTAX})") from None
