"""The peers nettools is compared against, and how to tell whether each one is installed."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform

# Report order; nettools first because every ratio is "nettools / peer".
PEERS: tuple[str, ...] = ("nettools", "gevent", "eventlet", "asyncio", "uvloop")
REFERENCE = "nettools"

# The module whose import decides availability; non-Python peers (socat, ...) can be
# added later with their own check.
_MODULES = {
    "nettools": "nettools",
    "gevent": "gevent",
    "eventlet": "eventlet",
    "asyncio": "asyncio",
    "uvloop": "uvloop",
}


class PeerUnavailable(Exception):
    """The peer's library cannot be imported in this environment."""


def load(peer: str) -> str:
    """Import the peer's library and return its version; raise PeerUnavailable if it can't."""
    module_name = _MODULES[peer]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a half-written library can fail with anything, not just ImportError
        raise PeerUnavailable(f"cannot import {module_name}: {exc!r}") from exc
    if peer == "asyncio":
        return f"python {platform.python_version()}"
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(module_name)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)
