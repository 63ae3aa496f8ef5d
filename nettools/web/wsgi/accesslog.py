"""The WSGI server's access log: one line per request, written after the response."""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["AccessLog", "DEFAULT_LOG_FORMAT"]

log = logging.getLogger("nettools.web.wsgi")

#: Apache's "combined" format plus the time taken; fields: client_ip, client_port,
#: date_time, request_line, method, path, protocol, status_code, body_length,
#: referer, user_agent, wall_seconds.
DEFAULT_LOG_FORMAT = (
    '%(client_ip)s - - [%(date_time)s] "%(request_line)s" %(status_code)s %(body_length)s '
    '"%(referer)s" "%(user_agent)s" %(wall_seconds).6f'
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _log_time() -> str:
    """Local time as Apache logs it (``10/Oct/2000:13:55:36 -0700``), whatever the locale."""
    t = time.localtime()
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:" + time.strftime(
        "%H:%M:%S %z", t
    )


class AccessLog:
    """Writes one line per request, ``fmt % fields``, to a logger or a file-like.

    ``fields(...)`` gives a request's fields (see ``DEFAULT_LOG_FORMAT``),
    ``line(fields)`` formats them, ``emit(line)`` writes a line: a log in
    another format can reuse them.
    """

    def __init__(self, target: Any, fmt: str = DEFAULT_LOG_FORMAT, x_forwarded_for: bool = True):
        self.fmt = fmt
        self.x_forwarded_for = x_forwarded_for
        if isinstance(target, logging.Logger):
            self.emit = lambda line: target.info("%s", line)
            self.emit_error = lambda text: target.error("%s", text)
        else:
            self.emit = lambda line: target.write(line + "\n")
            self.emit_error = lambda text: target.write(text.rstrip("\n") + "\n")

    def note(self, text: str) -> None:
        """Write one line of the server's own (starting up, exited), as eventlet's
        server writes them to its ``log``."""
        try:
            self.emit(text)
        except Exception:
            log.exception("access log failed")

    def error(self, text: str) -> None:
        """Write ``text`` (an application's traceback) where the lines go, as
        eventlet's server writes errors to its ``log``."""
        try:
            self.emit_error(text)
        except Exception:
            log.exception("access log failed")

    def fields(
        self, environ: dict, status: str | None, body_length: int, started: float
    ) -> dict[str, Any]:
        """The fields of one request's line."""
        client_ip = environ.get("REMOTE_ADDR", "-")
        if self.x_forwarded_for:
            forwarded = environ.get("HTTP_X_FORWARDED_FOR", "").replace(" ", "")
            if forwarded:
                client_ip = f"{forwarded},{client_ip}"
        method = environ.get("REQUEST_METHOD", "-")
        path = environ.get("RAW_URI", "-")
        protocol = environ.get("SERVER_PROTOCOL", "-")
        return {
            "client_ip": client_ip,
            "client_port": environ.get("REMOTE_PORT", "-"),
            "date_time": _log_time(),
            "request_line": f"{method} {path} {protocol}",
            "method": method,
            "path": path,
            "protocol": protocol,
            "status_code": (status or "-").split(" ", 1)[0],
            "body_length": body_length,
            "referer": environ.get("HTTP_REFERER", "-"),
            "user_agent": environ.get("HTTP_USER_AGENT", "-"),
            "wall_seconds": time.monotonic() - started,
        }

    def line(self, fields: dict[str, Any]) -> str:
        return self.fmt % fields

    def __call__(
        self, environ: dict, status: str | None, body_length: int, started: float
    ) -> None:
        try:
            self.emit(self.line(self.fields(environ, status, body_length, started)))
        except Exception:
            log.exception("access log failed")
