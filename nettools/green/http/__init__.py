"""Green ``http``: the standard package's names, with green ``client``,
``server`` and ``cookiejar`` submodules (``cookies`` only parses, and is the
standard one).

``from nettools.green.http import client`` gives ``http.client`` on green
sockets; its exception classes are the standard module's.
"""

from __future__ import annotations

from http import *  # noqa: F403 - the package's own names (HTTPStatus, HTTPMethod)
from http import __all__  # noqa: F401
