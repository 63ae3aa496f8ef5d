"""bench/readme.py: the README's benchmark table written from bench results, the way
`python -m bench --json` writes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.readme import END, START, merge, render

REPO_ROOT = Path(__file__).resolve().parents[2]


def peer(ops: float, **metrics: float) -> dict:
    return {"status": "ok", "median_ops_per_s": ops, "metrics_median": metrics}


def run(started: str, load: float, cases: dict) -> dict:
    machine = {"cpu_model": "Test CPU", "cores": 2, "pinned_core": 1, "python": "CPython 3.11",
               "loadavg": [load, load, load]}  # fmt: skip
    return {"started": started, "argv": ["--repeat", "3", "--json", "/tmp/x.json"], "repeat": 3,
            "machine": machine, "cases": cases}  # fmt: skip


FULL = run("2026-12-01T10:00:00+0000", 1.0, {
    "echo.echo_c100_64": {"peers": {
        "nettools": peer(100_000), "gevent": peer(50_000), "uvloop": peer(125_000),
        "eventlet": {"status": "unavailable"}}},
    "echo.mem_idle_10k": {"peers": {
        "nettools": peer(20_000, kib_per_conn=6.0), "gevent": peer(20_000, kib_per_conn=9.0)}},
    "wsgi.wsgi_hello_c100": {"peers": {"nettools": peer(30_000), "granian": peer(40_000)}},
})  # fmt: skip
AGAIN = run("2026-12-02T10:00:00+0000", 2.0, {
    "wsgi.wsgi_hello_c100": {"peers": {"nettools": peer(44_000), "granian": peer(40_000)}},
})  # fmt: skip


def test_one_run_gives_a_row_per_case_with_every_measured_peer_and_its_ratio() -> None:
    table = render(merge([FULL]))
    assert "2026-12-01" in table and "Test CPU" in table and "load 1.0" in table
    assert "--json" not in table  # where a run kept its file is no part of its command
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()
            if line.startswith("| ") and "---" not in line}  # fmt: skip
    echo = rows["echo, 100 connections x 64 B (round trips/s)"]
    # best first; ratio = nettools over the peer; an unavailable peer is left out
    assert echo.endswith("| 100k | uvloop 125k (0.80x) · gevent 50k (2.00x) |")
    assert "eventlet" not in echo
    memory = rows["memory per idle echo connection, 10k open (KiB, lower is better)"]
    assert memory.endswith("| 6 | gevent 9 (0.67x) |")
    assert not any("[1]" in line for line in rows.values())


def test_a_later_run_replaces_its_cases_and_rows_name_their_run() -> None:
    table = render(merge([FULL, AGAIN]))
    assert "1. 2026-12-01" in table and "2. 2026-12-02" in table
    assert "| hello-world WSGI, wrk -c100 (requests/s) [2] | 44k | granian 40k (1.10x) |" in table
    assert "| echo, 100 connections x 64 B (round trips/s) [1] |" in table


def test_results_without_any_table_case_are_refused() -> None:
    with pytest.raises(ValueError, match="none of the table's cases"):
        render(merge([run("2026-12-01T10:00:00+0000", 1.0, {})]))


def test_the_command_rewrites_only_between_the_markers_and_check_tells_a_stale_table(
    tmp_path: Path,
) -> None:
    results = tmp_path / "latest.json"
    results.write_text(json.dumps(FULL))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{START}\nold table\n{END}\n\n## After\n")

    def bench_readme(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bench.readme", str(results), "--readme",
                               str(readme), *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=30)  # fmt: skip

    assert bench_readme("--check").returncode == 1
    assert bench_readme().returncode == 0
    text = readme.read_text()
    assert text.startswith(f"# Title\n\n{START}\nMeasured:")
    assert text.endswith(f"{END}\n\n## After\n")
    assert "old table" not in text and "uvloop 125k" in text
    assert bench_readme("--check").returncode == 0

    readme.write_text("# no markers\n")
    refused = bench_readme()
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "markers" in refused.stderr
