"""The unit syntaxes every service's settings share, from the command line or a
``nettools run`` file: durations (``500ms``, ``30s``, ``5m``) and sizes (``64K``).

Each parser raises ``ValueError`` with a message fit to show the user as is.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration", "parse_size"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG])?(?:i?B)?\s*$", re.I)
_SIZE_UNITS = {None: 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_duration(text: str) -> float | None:
    """``500ms``, ``30s``, ``5m``, ``1h`` or plain seconds -> seconds.
    ``0``, ``none`` and ``off`` mean no limit (None)."""
    if text.strip().lower() in ("none", "off", "0", ""):
        return None
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 30s, 5m)")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(text: str) -> int:
    """``65536``, ``64K``, ``64KiB``, ``10M`` -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid size {text!r} (use e.g. 65536, 64K, 10M)")
    unit = m.group(2).upper() if m.group(2) else None
    return int(m.group(1)) * _SIZE_UNITS[unit]
