"""The CGI-style environ of PEP 3333: the server's part, then each request's."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from ..http import Request
from .response import FileWrapper

__all__ = [
    "SERVER_SOFTWARE", "UNIX_ADDR", "REQUEST_KEYS", "server_environ", "request_environ",
    "target_environ", "without_request", "raw_headers",
]  # fmt: skip

SERVER_SOFTWARE = "nettools.web.wsgi"

#: SERVER_NAME of a unix-socket server and REMOTE_ADDR of its clients (as eventlet).
UNIX_ADDR = "unix"

#: The keys every request's environ gets, whatever its headers: what
#: ``request_environ`` sets and the connection adds (input, posthooks).
#: A connection's base environ holds them already (None), so that the copy each
#: request starts from is sized for them and a few headers: no resize per request.
REQUEST_KEYS = (
    "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "RAW_PATH_INFO", "RAW_URI",
    "SERVER_PROTOCOL", "wsgi.input", "nettools.posthooks", "eventlet.posthooks",
)  # fmt: skip

# HTTP header name (raw bytes) -> environ key; None for names that are dropped.
_ENV_KEYS: dict[bytes, str | None] = {}
_ENV_KEYS_MAX = 2048
_MISSING = object()
_PERCENT = ord("%")


def _env_key(name: bytes) -> str | None:
    """The environ key for header ``name``; None for names with '_' (which would
    be indistinguishable from '-' in the environ: a header-spoofing hole)."""
    if b"_" in name:
        key = None
    else:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
    if len(_ENV_KEYS) < _ENV_KEYS_MAX:  # bounded: clients choose the names
        _ENV_KEYS[name] = key
    return key


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    """``(path, query)`` of an absolute-form (``http://host/p?q``), authority-form
    (CONNECT ``host:port``) or asterisk-form (``*``) request target."""
    if target == b"*":
        return b"*", b""
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return target, b""
    return url.path or b"", url.query or b""


def server_environ(sock: Any, url_scheme: str, server: Any, extra: dict | None) -> dict:
    """The keys every request of ``server`` (listening on ``sock``) shares, plus ``extra``."""
    try:
        addr = sock.getsockname()
    except OSError:
        addr = None
    if isinstance(addr, tuple):
        host, port = addr[0], str(addr[1])
    elif addr is None:
        host, port = "localhost", ""
    else:
        # A unix socket: no host name nor port.  eventlet's name for it, which
        # REMOTE_ADDR of its clients says too (see WSGIConnection).
        host, port = UNIX_ADDR, ""
    env = {
        "SCRIPT_NAME": "",
        "SERVER_NAME": host,
        "SERVER_PORT": port,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": sys.stderr,
        # Requests run in greenthreads of one OS thread, concurrently:
        # an application must not assume one request at a time.
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "nettools.server": server,
    }
    if extra:
        env.update(extra)
    return env


def without_request(base: dict) -> dict:
    """A connection's ``base`` environ without the ``REQUEST_KEYS`` it holds for
    requests: the environ of an answer to no request (a parse error)."""
    return {key: value for key, value in base.items() if key not in REQUEST_KEYS}


#: Request target -> its environ keys (``target_environ``): a client asks for
#: the same few targets again and again.
_TARGETS: dict[bytes, dict[str, str]] = {}
_TARGETS_MAX = 256
_TARGET_MAX_LEN = 256  # longer targets are not kept (at most ~0.5 MiB in all)


def target_environ(target: bytes) -> dict[str, str]:
    """The environ keys of a request target: RAW_URI, PATH_INFO (unescaped),
    QUERY_STRING and RAW_PATH_INFO (still %-escaped: eventlet's key)."""
    uri = target.decode("latin-1")
    if target[:1] == b"/":
        path, query_mark, query = target.partition(b"?")
        raw_path = path.decode("latin-1") if query_mark else uri
    else:
        path, query = _split_target(target)
        raw_path = path.decode("latin-1")
    # (An int test: ``b"%" in path`` first tries the bytes as an int, and formats
    # the TypeError it then discards.)
    return {
        "RAW_URI": uri,
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1") if _PERCENT in path else raw_path,
        "QUERY_STRING": query.decode("latin-1") if query else "",
        "RAW_PATH_INFO": raw_path,
    }


def request_environ(base: dict, req: Request) -> dict:
    """A copy of the connection's ``base`` environ with ``req``'s method, target,
    protocol and headers; the caller adds ``wsgi.input``."""
    env = base.copy()
    env["REQUEST_METHOD"] = req.method
    env["SERVER_PROTOCOL"] = req.protocol
    target = req.target
    keys = _TARGETS.get(target)
    if keys is None:
        keys = target_environ(target)
        if len(target) <= _TARGET_MAX_LEN:
            if len(_TARGETS) >= _TARGETS_MAX:  # bounded: clients choose the targets
                _TARGETS.clear()
            _TARGETS[target] = keys
    env.update(keys)
    keys = _ENV_KEYS
    for name, value in req.headers:
        key = keys.get(name, _MISSING)
        if key is _MISSING:
            key = _env_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if text[-1:] in (" ", "\t"):
            text = text.rstrip(" \t")
        if key in env:
            # Repeated header: one value, as CGI does ("; " for cookies, RFC 6265).
            env[key] += ("; " if key == "HTTP_COOKIE" else ",") + text
        else:
            env[key] = text
    return env


def raw_headers(req: Request) -> tuple[tuple[str, str], ...]:
    """eventlet's ``environ['headers_raw']``: every header as the client sent
    it, in order -- names in their own case, repeats and names with '_' (which
    the ``HTTP_`` keys leave out) included -- with surrounding whitespace off."""
    return tuple(
        (name.decode("latin-1"), value.decode("latin-1").strip(" \t\r\n"))
        for name, value in req.headers
    )
