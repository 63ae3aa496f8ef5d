"""Logs a log pipeline can parse: one JSON object per line, with stable keys.

Every line has ``time`` (RFC 3339, UTC, milliseconds), ``level``, ``service``,
``event`` (what happened: ``log`` unless the record says, e.g. ``closed`` or
``request``), ``message`` and ``logger``; ``peer`` when the record concerns a
connection; the record's other ``extra`` fields as they are; ``exception`` with
the traceback when there is one.

``JsonFormatter`` formats ``logging`` records so; ``JsonAccessLog`` writes a WSGI
server's access log so (the ``on_request`` hook of ``WSGIOptions``).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import IO, Any

from ...web.wsgi import AccessLog

__all__ = ["JsonFormatter", "JsonAccessLog", "rfc3339", "LOG_FORMATS", "text_formatter"]

log = logging.getLogger("nettools.access")

#: The values of ``--log-format``.
LOG_FORMATS = ("text", "json")

# What every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def rfc3339(timestamp: float | None = None) -> str:
    """``2025-01-31T12:34:56.789Z`` for a ``time.time()`` (default: now)."""
    when = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object (see the module's docstring)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in obj:
                obj[key] = value
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str)


def text_formatter() -> logging.Formatter:
    """The human format: ``nettools: LEVEL logger: message``."""
    return logging.Formatter("nettools: %(levelname)s %(name)s: %(message)s")


class JsonAccessLog:
    """A WSGI server's access log as JSON lines on ``stream``: the combined
    format's fields (``peer``, ``method``, ``path``, ``protocol``, ``status``,
    ``bytes``, ``referer``, ``user_agent``), ``duration_seconds``, and the
    combined line itself as ``message``.  Use as ``WSGIOptions.on_request``."""

    def __init__(self, stream: IO[str], service: str, x_forwarded_for: bool = True) -> None:
        self.stream = stream
        self.service = service
        self._access = AccessLog(stream, x_forwarded_for=x_forwarded_for)

    def __call__(
        self, environ: dict, status: str | None, received: int, sent: int, started: float
    ) -> None:
        try:
            self._access.emit(self._record(environ, status, received, sent, started))
        except Exception:
            log.exception("access log failed")

    def _record(
        self, environ: dict, status: str | None, received: int, sent: int, started: float
    ) -> str:
        fields = self._access.fields(environ, status, sent, started)
        code = fields["status_code"]
        port = fields["client_port"]
        peer = fields["client_ip"] if port in ("", "-") else f"{fields['client_ip']}:{port}"
        obj = {
            "time": rfc3339(),
            "level": "info",
            "service": self.service,
            "event": "request",
            "message": self._access.line(fields),
            "peer": peer,
            "method": fields["method"],
            "path": fields["path"],
            "protocol": fields["protocol"],
            "status": int(code) if code.isdigit() else None,
            "bytes": sent,
            "request_bytes": received,
            "referer": fields["referer"],
            "user_agent": fields["user_agent"],
            "duration_seconds": round(fields["wall_seconds"], 6),
        }
        return json.dumps(obj)
