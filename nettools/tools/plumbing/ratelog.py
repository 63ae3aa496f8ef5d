"""Warnings about events that may come in floods, logged at most once in a while.

A peer that sends junk, or a client that floods, must not flood the log too:
the first event of a kind is logged at once, then at most one line every
``every`` seconds, each saying how many events it stands for.
"""

from __future__ import annotations

import logging
import time

__all__ = ["WARN_EVERY", "RateLimitedWarning"]

#: Seconds between two warnings of one kind.
WARN_EVERY = 10.0


class RateLimitedWarning:
    """Counts events of one kind and logs them at most every ``every`` seconds.

    ``template`` is formatted with ``n`` (events since the last line), ``total``
    (events in all) and ``detail`` (what the caller says of the latest one), e.g.
    ``"ignored {n} malformed message(s) ({total} in all); latest: {detail}"``.
    """

    __slots__ = ("logger", "template", "every", "level", "total", "_unlogged", "_logged_at")

    def __init__(
        self, logger: logging.Logger, template: str, *, every: float = WARN_EVERY,
        level: int = logging.WARNING,
    ) -> None:
        self.logger = logger
        self.template = template
        self.every = every
        self.level = level
        self.total = 0
        self._unlogged = 0
        self._logged_at = -1e18

    def __call__(self, detail: str = "") -> None:
        """One more event; logs if the last line is ``every`` seconds old."""
        self.total += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= self.every:
            self._logged_at = now
            n, self._unlogged = self._unlogged, 0
            if self.logger.isEnabledFor(self.level):
                self.logger.log(self.level, self.template.format(
                    n=n, total=self.total, detail=detail))
