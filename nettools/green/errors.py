"""Telling socket errors apart: which errno an exception carries, and what it means.

``SOCKET_CLOSED``: errnos that mean the peer or the socket is gone (reading
or writing any more is pointless); ``SOCKET_BLOCKING``: errnos that mean the
call would block (try again once the fd is ready).
"""

from __future__ import annotations

import errno

__all__ = ["get_errno", "SOCKET_CLOSED", "SOCKET_BLOCKING"]

SOCKET_CLOSED = frozenset(
    {errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.EPIPE, errno.EBADF}
)
SOCKET_BLOCKING = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINPROGRESS})


def get_errno(exc: BaseException) -> int | None:
    """The errno of ``exc``: its ``errno`` attribute, else its first argument
    (exceptions made as ``Error(errno, message)``), else None."""
    code = getattr(exc, "errno", None)
    if code is not None:
        return code
    return exc.args[0] if exc.args else None
