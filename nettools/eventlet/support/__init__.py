"""``eventlet.support``: the helpers eventlet programs import from it, re-exported."""

from __future__ import annotations

from codecs import decode as bytes_to_str

import greenlet as greenlets

from ...green.errors import get_errno

__all__ = ["bytes_to_str", "get_errno", "greenlets"]
