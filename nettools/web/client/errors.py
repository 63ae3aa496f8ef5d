"""Why a request got no response: ``FetchError`` and its ``kind``, from libcurl's error codes."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import pycurl

__all__ = ["FetchError", "FETCH_ERROR_KINDS", "describe_error", "seconds"]

FETCH_ERROR_KINDS = (
    "dns", "connect", "timeout", "tls", "protocol", "too-many-redirects", "refused-address",
    "other",
)  # fmt: skip


class FetchError(Exception):
    """A request that got no HTTP response: ``kind`` says why, ``url`` which one."""

    def __init__(self, url: str, kind: str, message: str) -> None:
        super().__init__(url, kind, message)
        self.url = url
        self.kind = kind if kind in FETCH_ERROR_KINDS else "other"
        self.message = _printable(" ".join(str(message).split()))

    def __str__(self) -> str:
        return f"{self.kind}: {_printable(self.url)}: {self.message}"


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so it stays one harmless line."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def seconds(value: float | None) -> str:
    """A timeout as error messages show it."""
    return "(no limit)" if value is None else f"{value:g}s"


_TLS_CODES = frozenset(
    getattr(pycurl, name)
    for name in (
        "E_SSL_CONNECT_ERROR", "E_PEER_FAILED_VERIFICATION", "E_SSL_CERTPROBLEM",
        "E_SSL_CIPHER", "E_SSL_CACERT", "E_SSL_CACERT_BADFILE", "E_SSL_ENGINE_NOTFOUND",
        "E_SSL_ENGINE_SETFAILED", "E_SSL_SHUTDOWN_FAILED", "E_SSL_CRL_BADFILE",
        "E_SSL_ISSUER_ERROR", "E_SSL_PINNEDPUBKEYNOTMATCH", "E_SSL_INVALIDCERTSTATUS",
        "E_USE_SSL_FAILED",
    )
    if hasattr(pycurl, name)
)  # fmt: skip
_PROTOCOL_CODES = frozenset(
    getattr(pycurl, name)
    for name in (
        "E_WEIRD_SERVER_REPLY", "E_PARTIAL_FILE", "E_GOT_NOTHING", "E_RECV_ERROR",
        "E_SEND_ERROR", "E_BAD_CONTENT_ENCODING", "E_HTTP2", "E_HTTP2_STREAM",
        "E_HTTP_RETURNED_ERROR", "E_FILESIZE_EXCEEDED", "E_UNKNOWN_OPTION", "E_HTTP3",
    )
    if hasattr(pycurl, name)
)  # fmt: skip


def describe_error(
    h: Any, url: str, proxy: str, code: int, message: str, connect_timeout: float | None
) -> FetchError:
    """One FetchError for the libcurl error ``code`` that ended exchange ``h``
    (-1: our read timeout, with ``message`` saying so)."""
    if code == -1:
        return FetchError(url, "timeout", message)
    e = h.easy
    parts = urlsplit(proxy or url)
    host = parts.hostname or ""
    where = f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
    if parts.port is None:
        where = host
    if code == pycurl.E_COULDNT_CONNECT and h.refused and not proxy:
        ips = ", ".join(sorted(set(h.refused)))
        return FetchError(
            url, "refused-address", f"{host} resolves to a non-public address ({ips})"
        )
    if code == pycurl.E_OPERATION_TIMEDOUT:
        # Only the connect timeout (TCP, proxy tunnel, TLS handshake) is
        # libcurl's; the read and whole-exchange timeouts are ours.
        return FetchError(
            url, "timeout", f"connect timed out after {seconds(connect_timeout)}"
        )
    if code in (pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_COULDNT_RESOLVE_PROXY):
        return FetchError(url, "dns", message or f"cannot resolve {host}")
    if code == pycurl.E_COULDNT_CONNECT:
        errno_ = e.getinfo(pycurl.OS_ERRNO)
        reason = os.strerror(errno_).lower() if errno_ else message
        via = "proxy " if proxy else ""
        return FetchError(url, "connect", f"cannot connect to {via}{where}: {reason}")
    if code in _TLS_CODES:
        return FetchError(url, "tls", message)
    if code == pycurl.E_UNSUPPORTED_PROTOCOL and "HTTP/0.9" in message:
        return FetchError(url, "protocol", "the answer is not HTTP")
    if code in (pycurl.E_URL_MALFORMAT, pycurl.E_UNSUPPORTED_PROTOCOL):
        return FetchError(url, "other", f"bad URL: {message}")
    if code in _PROTOCOL_CODES:
        return FetchError(url, "protocol", message)
    if code == getattr(pycurl, "E_PROXY", -2):
        return FetchError(url, "connect", message)
    return FetchError(url, "other", message or f"libcurl error {code}")
