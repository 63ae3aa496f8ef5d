"""Green ``builtins``: ``open()`` tells the hub about each file it opens.

The hub keeps a record per fd it has waited on.  A file opened where an fd
was closed behind the hub's back (``os.close`` on a pipe it watched) may get
that fd number; telling the hub forgets the stale record.  Patched only when
asked: ``monkey_patch(builtins=True)``, as in eventlet.
"""

from __future__ import annotations

import builtins as _builtins
from typing import Any

from ..kernel.hub import current_hub

__patched__ = ["open"]

_real_open = _builtins.open


def open(file: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: A001 - the builtin's name
    """The built-in ``open``; the hub forgets whatever it knew of the new fd's number."""
    f = _real_open(file, *args, **kwargs)
    hub = current_hub()
    if hub is not None:
        try:
            hub.notify_opened(f.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # no fd of its own (an opener returning something else)
    return f
