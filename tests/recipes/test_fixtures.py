"""The CI fixtures recipe: ``nettools run recipes/ci-fixtures.toml`` driven by
``recipes/ci-fixtures.sh``, as a CI job would run it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers.paths import RECIPES

pytestmark = pytest.mark.timeout(90)


def test_ci_fixtures_start_serve_reload_and_stop():
    env = {**os.environ, "NETTOOLS": f"{sys.executable} -m nettools", "PYTHON": sys.executable}
    env = {k: v for k, v in env.items() if not k.startswith("NETTOOLS_")}
    proc = subprocess.run(["bash", str(RECIPES / "ci-fixtures.sh")], capture_output=True,
                          text=True, timeout=80, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ci-fixtures: the test suite passed" in out
    assert "ci-fixtures: reloaded, docs at 127.0.0.1:" in out
    # One connection kept across the reload, one through the latency toxic.
    assert '"name": "db", "connections": 2,' in out
    assert out.rstrip().endswith("ci-fixtures: ok")
