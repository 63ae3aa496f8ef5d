"""How the forwarder words what went wrong, in lower case, to follow a colon."""

from __future__ import annotations

from ...green import ssl

__all__ = ["describe", "reason", "ForwardError"]


def describe(exc: BaseException) -> str:
    """Why a connection failed, for its log line: ``timed out``,
    ``certificate verify failed: ...``, ``wrong version number``..."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None)  # e.g. WRONG_VERSION_NUMBER
        return reason.lower().replace("_", " ") if reason else str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def reason(exc: OSError) -> str:
    """An ``OSError``'s own words (a failed look-up, a file that does not load)."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


class ForwardError(ValueError):
    """A request the forwarder refuses: a bad rule, toxic or proxy, an unknown
    name, a name taken.  ``status`` is the HTTP status the Toxiproxy API
    answers with (400 bad input, 404 unknown name, 409 name taken); the
    message is one line, as Toxiproxy words it where it has a word for it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
