"""``recipes/ci-chaos.sh``: a client suite against a service behind latency, a
reset and a timeout, set through the forwarder's Toxiproxy API, run as CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers.paths import RECIPES

pytestmark = pytest.mark.timeout(60)


def test_ci_chaos_recipe_client_copes_with_each_fault(tmp_path):
    env = {**os.environ, "NETTOOLS": f"{sys.executable} -m nettools", "PYTHON": sys.executable,
           "TMPDIR": str(tmp_path)}
    res = subprocess.run(["bash", str(RECIPES / "ci-chaos.sh")], capture_output=True, text=True,
                         timeout=50, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert "latency: 3 requests answered, slower but within the deadline" in lines
    assert "reset: the reset was seen as a reset, and the retry succeeded" in lines
    assert any(line.startswith("timeout: the client gave up after 1.") for line in lines)
    assert lines[-1] == "ci-chaos: ok"
