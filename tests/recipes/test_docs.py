"""What the README and `make demo` show must keep working."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from helpers.paths import ROOT


@pytest.mark.timeout(60)
def test_readme_tour_runs_and_prints_what_it_claims() -> None:
    readme = (ROOT / "README.md").read_text()
    tour = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    res = subprocess.run([sys.executable, "-c", tour], capture_output=True, text=True, timeout=50)
    assert res.returncode == 0, res.stderr
    # Every "# value" comment on a print line in the tour is what that line prints.
    claimed = re.findall(r"print\(.*\)[ \t]+# (.+?)(?: \(.*\))?$", tour, re.M)
    printed = res.stdout.splitlines()
    for value in claimed:
        assert value in printed, (value, printed)
    assert "nothing came" in printed


@pytest.mark.timeout(120)
def test_make_demo_runs_the_kernel_and_every_server_and_reports_each_part() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for part in ("GreenPool(100).imap", "GreenPile", "Queue(maxsize=10)", "Timeout(0.1)"):
        assert part in out
    assert "never more than 100 at once" in out
    assert "4000 lines echoed" in out
    assert out.count("'<ada> hello from ada'") == 2
    assert "50/50 came back intact" in out
    assert "GET / on the site: HTTP/1.1 200 OK, <h1>from nettools run</h1>" in out
    assert "SIGHUP: started ['chat'], kept ['site', 'backend', 'db']" in out
    assert "the connection to db after the reload: 'still connected'" in out
    assert "    db: 1 connection(s), 30 bytes in" in out
    assert re.search(r"started: nettools static \S+ -> 127\.0\.0\.1:\d+", out)
    assert re.search(r"crawl http://127\.0\.0\.1:\d+/: 32 pages, exit status 2", out)
    assert re.search(r"broken: \S+/missing\.html \(404\), linked from \['\S+/page7\.html'\]", out)
    summaries = [json.loads(line.split(": ", 1)[1]) for line in out.splitlines()
                 if line.startswith("    ") and ": {" in line]
    assert len(summaries) == 3
    forward = summaries[0]
    assert forward["bytes_in"] == forward["bytes_out"] == 50 * 256 * 1024
