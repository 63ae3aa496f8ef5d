"""The WSGI server's options: one object, read by ``WSGIServer`` and ``wsgi.server()``."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httptools

from ..http import Limits
from .accesslog import DEFAULT_LOG_FORMAT, AccessLog

__all__ = ["WSGIOptions"]


@dataclass(frozen=True)
class WSGIOptions:
    """How a WSGI server serves; eventlet's names where eventlet has one.

    * ``max_size`` (1024): connections served at once; or pass ``custom_pool``.
    * ``keepalive`` (True): True keeps connections alive up to
      ``keepalive_timeout`` (75 s) between requests, a number is that timeout
      (announced as ``Keep-Alive: timeout=N``, as eventlet does), False closes
      every connection after one response.
    * ``log`` (sys.stderr), ``log_format``, ``log_output`` (True),
      ``log_x_forwarded_for`` (True): the access log, to a file-like or a
      ``logging.Logger``.  Nothing is done per request when it is off.
    * ``url_length_limit`` (8192, 414), ``max_header_size`` (64 KiB, 431),
      ``max_headers`` (100, 431), ``max_body_size`` (1 GiB, 413; None: none),
      ``header_timeout`` (10 s, 408), ``socket_timeout`` (each receive or send
      within a request; default: the keep-alive timeout).
    * ``debug`` (False): tracebacks in 500 responses.  (eventlet defaults to True.)
    * ``environ``: extra keys for every request's environ.
    * ``ssl_context``: serve TLS (or pass a listener wrapped with ``wrap_ssl``).
    * ``minimum_chunk_size`` (None): gather a streamed body into sends of at
      least this size.  ``capitalize_response_headers`` (False): send header
      names Capitalized-Like-This.  ``max_http_version`` ("HTTP/1.1").
    * ``parser``: the parser class (``httptools.HttpRequestParser`` API).
    * ``name`` ("wsgi"): the server's name in logs and statistics.
    * ``on_request`` (None): called after each response (not after a takeover)
      as ``on_request(environ, status, bytes_received, bytes_sent, started)``:
      the status line's text (None if nothing was answered), the request and
      response body sizes, and the ``time.monotonic()`` the request began.
      For metrics; it must not wait.
    * ``protocol``: the class serving each connection, a subclass of
      ``WSGIConnection``; default: that class (``server()``: ``HttpProtocol``,
      eventlet's, which programs subclass).
    * ``headers_raw`` (False): put eventlet's ``environ['headers_raw']`` in each
      request's environ, the headers as sent: ``(name, value)`` pairs.
    """

    log: Any = None
    environ: dict | None = None
    max_size: int | None = None
    max_http_version: str = "HTTP/1.1"
    minimum_chunk_size: int | None = None
    log_x_forwarded_for: bool = True
    custom_pool: Any = None
    keepalive: bool | float = True
    log_output: bool = True
    log_format: str = DEFAULT_LOG_FORMAT
    url_length_limit: int = 8192
    debug: bool = False
    socket_timeout: float | None = None
    capitalize_response_headers: bool = False
    keepalive_timeout: float | None = 75.0
    header_timeout: float | None = 10.0
    max_header_size: int = 64 * 1024
    max_headers: int = 100
    max_body_size: int | None = 1 << 30
    ssl_context: Any = None
    parser: Callable[[Any], Any] | None = None
    name: str = "wsgi"
    on_request: Callable[[dict, str | None, int, int, float], None] | None = None
    protocol: type | None = None
    headers_raw: bool = False

    def __post_init__(self) -> None:
        if self.protocol is not None:
            from .connection import WSGIConnection  # the default is defined over there

            if not (isinstance(self.protocol, type) and issubclass(self.protocol, WSGIConnection)):
                raise TypeError(
                    "protocol must be a subclass of nettools.web.wsgi.WSGIConnection "
                    "(such as HttpProtocol), "
                    f"not {self.protocol!r}"
                )
        if self.max_http_version not in ("HTTP/1.1", "HTTP/1.0"):
            raise ValueError(
                f"max_http_version must be HTTP/1.1 or HTTP/1.0: {self.max_http_version!r}"
            )

    @classmethod
    def build(cls, options: WSGIOptions | None, overrides: Mapping[str, Any]) -> WSGIOptions:
        """``options`` (default: the defaults) with the keyword ``overrides`` applied;
        an unknown keyword raises TypeError."""
        if options is None:
            return cls(**overrides)
        return dataclasses.replace(options, **overrides) if overrides else options

    @property
    def keepalive_enabled(self) -> bool:
        return bool(self.keepalive)

    def limits(self) -> Limits:
        """The request limits and timeouts these options ask for."""
        keepalive_timeout = self.keepalive_timeout
        if not isinstance(self.keepalive, bool):
            keepalive_timeout = float(self.keepalive)  # a number is the timeout
        return Limits(
            max_request_line=self.url_length_limit,
            max_header_size=self.max_header_size,
            max_headers=self.max_headers,
            max_body_size=self.max_body_size,
            header_timeout=self.header_timeout,
            keepalive_timeout=keepalive_timeout,
            io_timeout=self.socket_timeout,
        )

    def parser_factory(self) -> Callable[[Any], Any]:
        return self.parser or httptools.HttpRequestParser

    def access_log(self) -> AccessLog | None:
        """The access log, or None when it is off."""
        if not self.log_output:
            return None
        target = sys.stderr if self.log is None else self.log
        return AccessLog(target, self.log_format, self.log_x_forwarded_for)
