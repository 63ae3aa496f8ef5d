"""The CLI's argument syntaxes: durations, sizes and addresses -- the tools' own
(``nettools.tools.plumbing.units`` and ``nettools.net.parse_address``), so that a
command line and a ``nettools run`` file read them alike.

Each parser raises ``ValueError`` with a message fit to show the user as is;
the CLI turns that into a usage error (exit 2).
"""

from __future__ import annotations

from ..tools.plumbing.service import Address, parse_address
from ..tools.plumbing.units import parse_duration, parse_size

__all__ = ["parse_duration", "parse_size", "Address", "parse_address"]
