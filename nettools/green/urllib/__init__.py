"""Green ``urllib``: ``request`` and ``robotparser`` on green sockets, TLS and
``http.client``; ``parse``, ``error`` and ``response`` only handle data and are
the standard modules (so their exceptions and results are the standard ones).
"""

from __future__ import annotations

__all__: list[str] = []
