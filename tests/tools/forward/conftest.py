"""Fixtures of the forwarder's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers.sockets import Target, echo_handler

from nettools.tools.forward import Forwarder, RuleOptions, open_rules


@pytest.fixture
def echo_target() -> Iterator[Target]:
    """A stdlib echo server (half-closes back at EOF) for the forwarder to reach."""
    target = Target(echo_handler)
    yield target
    target.close()


@pytest.fixture
def forwarder() -> Iterator:
    """``forwarder(rule, **rule_options)``: a started ``Forwarder`` of one rule
    written as on the command line; every one made is stopped afterwards."""
    made: list[Forwarder] = []

    def start(rule: str, **options) -> Forwarder:
        fwd = Forwarder(open_rules([rule], options=RuleOptions(**options))).start()
        made.append(fwd)
        return fwd

    yield start
    for fwd in made:
        fwd.stop(0)
