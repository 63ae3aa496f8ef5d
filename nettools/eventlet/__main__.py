"""``python -m nettools.eventlet PROGRAM [ARGS]``: run an eventlet program on nettools.

The program runs unmodified as ``__main__`` (as ``python PROGRAM ARGS`` would
run it), with ``import eventlet`` and every eventlet module served by
nettools.  ``-m MODULE`` runs a module instead of a file.
"""

from __future__ import annotations

import os
import runpy
import sys

from . import install

USAGE = "usage: python -m nettools.eventlet PROGRAM [ARGS...] | -m MODULE [ARGS...]"


def main(argv: list[str]) -> int:
    """Run the program ``argv`` names; returns an exit code for a usage error."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    path = argv[0]
    if not os.path.exists(path):
        message = f"cannot open {path!r}: No such file or directory"
        print(f"nettools.eventlet: {message}", file=sys.stderr)
        return 2
    sys.argv = list(argv)
    # As ``python PROGRAM`` does: the program's folder first on the path (for
    # its sibling modules), in place of this runner's.
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    runpy.run_path(path, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
