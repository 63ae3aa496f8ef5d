"""``nettools crawl --state sqlite:FILE``: a crawl killed with SIGKILL (mid-write,
as a power cut would leave it) goes on when the same command is run again, and
its report is the one an uninterrupted crawl writes: same pages, same broken
links, same referrers and depths.  No page is fetched twice but those in
flight at the kill."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest
from helpers.cli import clean_env, run_cli
from helpers.crawl_site import External, Site, comparable, serve

pytestmark = pytest.mark.timeout(120)

PAGES = 300


def crawl_argv(url: str, db, report, *more: str) -> list[str]:
    return [sys.executable, "-m", "nettools", "crawl", url, "--state", f"sqlite:{db}",
            "--check-links", "--check-fragments", "--max-body", "64K", "--format", "json",
            "-o", str(report), *more]  # fmt: skip


def report_of(path) -> dict:
    return comparable(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def sites():
    ext = External()
    with serve(ext) as ext_srv:
        site = Site(PAGES, retry_after=0, slow=0.01, huge=100_000, external=ext_srv.url)
        with serve(site) as srv:
            yield site, srv.url


@pytest.fixture(scope="module")
def uninterrupted(sites, tmp_path_factory):
    site, base = sites
    tmp = tmp_path_factory.mktemp("whole")
    site.reset()
    proc = subprocess.run(crawl_argv(base + "/", tmp / "crawl.db", tmp / "r.json"),
                          capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 2, proc.stderr
    # A crawl with a journal finds what one without finds.
    plain = run_cli("crawl", base + "/", "--check-links", "--check-fragments", "--max-body",
                    "64K", "--format", "json", "-o", str(tmp / "plain.json"))  # fmt: skip
    assert plain.returncode == 2
    assert report_of(tmp / "plain.json") == report_of(tmp / "r.json")
    return report_of(tmp / "r.json")


def run_until_killed(argv: list[str], site: Site, sig: int = signal.SIGKILL) -> set[str]:
    """Start the crawl, send it ``sig`` once the site has had ``site.reach_at``
    requests (those after ``hold_from`` hang until then) and wait for its end;
    the paths in flight at the signal (asked for, not answered)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=clean_env())  # fmt: skip
    try:
        assert site.reached.wait(30), "the crawl never got going"
        with site.lock:  # the requests hang: nothing is answered until the release
            in_flight = {p for p, starts in site.started.items()
                         if len(site.answered.get(p, ())) < len(starts)}  # fmt: skip
        proc.send_signal(sig)
        proc.wait(20)
        return in_flight
    finally:
        if proc.poll() is None:
            proc.kill()
        site.release.set()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_stopped_mid_crawl_the_same_command_goes_on_to_the_same_report(sites, uninterrupted,
                                                                         tmp_path, sig):
    site, base = sites
    db, report = tmp_path / "crawl.db", tmp_path / "r.json"
    argv = crawl_argv(base + "/", db, report, "--concurrency", "4")
    site.reset()
    # Requests after the 120th hang: the signal comes when all 4 slots hang, so
    # every page answered before has been journaled and 4 are in flight.
    site.hold_from, site.reach_at = 120, 124
    in_flight = run_until_killed(argv, site, sig)
    assert len(in_flight) == 4
    first = Counter(site.counts)
    if sig == signal.SIGKILL:
        assert report.read_text() == ""  # killed: no report
    else:  # the polite stop reports what was crawled; the visits it cut are not journaled
        partial = json.loads(report.read_text())
        assert partial["summary"]["stopped"] == "interrupted"
        assert partial["summary"]["pages"] < uninterrupted["summary"]["pages"]
    site.reset()
    proc = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert report_of(report) == uninterrupted
    again = {path for (_, path) in site.counts} & {path for (_, path) in first}
    assert again <= in_flight, again - in_flight
    assert ("GET", "/robots.txt") not in site.counts  # read once, journaled
    # The second run counts the first's requests and time too.
    summary = json.loads(proc.stderr.splitlines()[-1])
    assert summary["requests"] >= sum(first.values()) - len(in_flight) + sum(site.counts.values())


def journaled(db) -> set[str]:
    """The paths of the site whose visits (or robots.txt) the journal ``db`` holds."""
    if not db.exists():
        return set()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        urls = [u for (u,) in conn.execute("SELECT url FROM visits UNION SELECT url FROM plain")]
    return {urlsplit(u).path for u in urls}


def test_killed_again_and_again_at_random_moments(sites, uninterrupted, tmp_path):
    # Each run asks for nothing the journal held when it started: only pages
    # whose visit was cut (in flight, or answered but not yet journaled) are
    # fetched again.
    site, base = sites
    db, report = tmp_path / "crawl.db", tmp_path / "r.json"
    argv = crawl_argv(base + "/", db, report, "--concurrency", "8")
    rng = random.Random(19)
    for _ in range(3):
        before = journaled(db)
        site.reset()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=clean_env())  # fmt: skip
        try:
            # Kill it somewhere in its stream of journal writes: after 15 to 60
            # requests of this run (3 runs cannot finish the site's 300+ pages).
            goal = rng.randint(15, 60)
            for _ in range(6000):
                if site.total >= goal or proc.poll() is not None:
                    break
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL  # killed, not finished
        asked = {path for (_, path) in site.counts}
        assert not asked & before, asked & before
        assert len(journaled(db)) > len(before)  # each run got somewhere
    before = journaled(db)
    site.reset()
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.returncode == 2, done.stderr
    assert report_of(report) == uninterrupted
    asked = {path for (_, path) in site.counts}
    assert not asked & before, asked & before


def test_report_reads_the_journal_without_a_request(sites, uninterrupted, tmp_path):
    site, base = sites
    db, report = tmp_path / "crawl.db", tmp_path / "r.json"
    argv = crawl_argv(base + "/", db, report)
    assert subprocess.run(argv, capture_output=True, env=clean_env(), timeout=60).returncode == 2
    site.reset()
    # No URL: the crawl the journal holds, with its own settings.
    proc = run_cli("crawl", "--state", f"sqlite:{db}", "--report", "--format", "json", "-o",
                   str(report))  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert site.total == 0
    assert report_of(report) == uninterrupted
    # Run again, the finished crawl asks for nothing and reports the same.
    again = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert again.returncode == 2 and site.total == 0
    assert report_of(report) == uninterrupted


def test_report_reads_the_journal_while_the_crawl_runs(sites, uninterrupted, tmp_path):
    site, base = sites
    db, report = tmp_path / "crawl.db", tmp_path / "r.json"
    site.reset()
    site.hold_from, site.reach_at = 80, 84
    proc = subprocess.Popen(crawl_argv(base + "/", db, report, "--concurrency", "4"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=clean_env())  # fmt: skip
    try:
        assert site.reached.wait(30), "the crawl never got going"
        mid = run_cli("crawl", "--state", f"sqlite:{db}", "--report", "--format", "json")
    finally:
        site.release.set()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert mid.returncode in (0, 2), mid.stderr
    doc = json.loads(mid.stdout)
    assert doc["summary"]["stopped"] == "unfinished"
    assert 0 < doc["summary"]["pages"] < uninterrupted["summary"]["pages"]
    assert report_of(report) == uninterrupted  # the crawl went on undisturbed


def test_another_crawl_in_the_journal_is_a_usage_error_unless_fresh(sites, tmp_path):
    site, base = sites
    db = tmp_path / "crawl.db"
    first = run_cli("crawl", base + "/p/1.html", "--include", "/p/", "--state", f"sqlite:{db}")
    assert first.returncode == 0, first.stderr
    other = run_cli("crawl", base + "/p/1.html", "--state", f"sqlite:{db}")
    assert other.returncode == 2
    assert other.stderr.count("\n") == 1 and "holds another crawl (its include" in other.stderr
    site.reset()
    fresh = run_cli("crawl", base + "/p/1.html", "--state", f"sqlite:{db}", "--fresh")
    assert fresh.returncode == 2, fresh.stderr  # the whole site this time: broken links
    assert ("GET", "/p/1.html") in site.counts
