"""Registry of benchmark cases.

A case family is one module in this package that defines ``CASES: dict[str, Case]``; list the
module in ``FAMILIES`` to register it. Each peer entry of a case is a plain function ``fn(n)``
that performs ``n`` operations in the current process. It either returns ``None`` (the harness
times the call) or a dict with at least ``"ops_per_s"`` plus any extra metrics (p50, p99,
memory, ...), for workloads that must time themselves, such as an external load generator or
an event loop whose creation should not be counted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Order here is the order of the report.
FAMILIES: tuple[str, ...] = (
    "micro", "echo", "forward", "wsgi", "static", "websocket", "socketio", "crawl", "crawl_shared",
    "zmq", "soak",
)  # fmt: skip

Result = dict[str, Any] | None
CaseFn = Callable[[int], Result]


@dataclass(frozen=True)
class Case:
    n: int  # default number of operations for one timed run
    peers: Mapping[str, CaseFn]
    unit: str = "ops"  # what one operation is, for the report ("round trips", "requests")
    warmup: int | None = None  # operations in the untimed warm-up; default n // 10
    # Extra metrics where lower is better (latency, memory) that get nettools/peer ratios too.
    compare: tuple[str, ...] = ()
    runs: int | None = None  # at most this many runs, whatever --repeat says (a long soak)
    timeout: float | None = None  # seconds one run may take, if more than --timeout
    # Filled in by the registry from the dict key and the module name; leave them unset.
    name: str = field(default="")
    family: str = field(default="")

    @property
    def qualname(self) -> str:
        return f"{self.family}.{self.name}"

    @property
    def warmup_n(self) -> int:
        return self.warmup if self.warmup is not None else max(1, self.n // 10)


def load_cases() -> dict[str, Case]:
    """Import every registered family and return its cases by name, in report order."""
    cases: dict[str, Case] = {}
    for family in FAMILIES:
        module = importlib.import_module(f"{__name__}.{family}")
        for name, case in module.CASES.items():
            if name in cases:
                raise ValueError(f"case {name!r} defined by both {cases[name].family} and {family}")
            cases[name] = replace(case, name=name, family=family)
    return cases
