"""``nettools crawl`` as CI runs it: exit codes, report formats (junit parsed
with xml.etree), usage errors, and a SIGINT mid-crawl that still writes the report."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from helpers.cli import clean_env, last_json, run_cli
from helpers.crawl_site import MISSING_EVERY, External, Site, serve

pytestmark = pytest.mark.timeout(60)

PAGES = 100


@pytest.fixture(scope="module")
def sites():
    """``(base, ext)``: the generated site and a second host it links to."""
    ext = External()
    site = Site(PAGES, retry_after=0, slow=0.01, huge=100_000)
    with serve(ext) as ext_srv:
        site.external = ext_srv.url
        with serve(site) as srv:
            yield srv.url, ext_srv.url


def test_broken_links_exit_2_and_junit_lists_each_with_its_referrers(sites, tmp_path):
    base, ext = sites
    report = tmp_path / "links.xml"
    proc = run_cli("crawl", base + "/", "--check-links", "--check-fragments", "--max-body",
                   "64K", "--format", "junit", "-o", str(report))  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    summary = last_json(proc.stderr)
    assert summary["event"] == "crawled" and summary["broken"] > 0

    root = ET.parse(report).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    names = [c.get("name") for c in cases]
    assert len(names) == len(set(names)) == int(suite.get("tests"))
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert int(suite.get("failures")) == len(failed) == summary["broken"]
    expected = {f"{base}/missing.html", f"{base}/error", f"{base}/loop/a",
                f"{base}/frag.html#nope", f"{ext}/gone.html"}  # fmt: skip
    expected |= {f"{base}/missing/{i}.html" for i in range(0, PAGES, MISSING_EVERY)}
    assert set(failed) == expected
    assert failed[f"{base}/missing/0.html"].get("message") == "HTTP 404"
    assert f"{base}/p/0.html" in failed[f"{base}/missing/0.html"].text  # its referrer
    assert f"{base}/" in failed[f"{ext}/gone.html"].text
    passed = {c.get("name") for c in cases if len(c) == 0}
    assert {f"{base}/p/5.html", f"{ext}/nohead.html", f"{base}/frag.html#sec1"} <= passed
    skipped = {c.get("name"): c.find("skipped").get("message") for c in cases
               if c.find("skipped") is not None}  # fmt: skip
    assert skipped == {f"{base}/private/secret.html": "robots", f"{base}/private/": "robots",
                       "mailto:someone@example.org": "scheme"}  # fmt: skip


def test_all_links_fine_exit_0(sites):
    base, _ = sites
    proc = run_cli("crawl", base + "/p/1.html", "--include", "/p/", "--strategy",
                   "producer-consumer")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc.stderr)
    assert summary["pages"] == PAGES and summary["broken"] == 0
    assert summary["strategy"] == "producer-consumer"
    assert f"{PAGES} pages" in proc.stdout and "BROKEN" not in proc.stdout
    assert len(proc.stderr.splitlines()) == 1  # no progress bar when stderr is not a terminal


def test_text_report_names_referrers_on_stdout(sites):
    base, _ = sites
    proc = run_cli("crawl", base + "/", "--max-body", "64K")
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    at = lines.index(f"BROKEN {base}/missing/0.html  (HTTP 404)")
    assert lines[at + 1] == f"  linked from: {base}/p/0.html"


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_machine_readable_formats(sites, fmt):
    base, _ = sites
    proc = run_cli("crawl", base + "/", "--max-body", "64K", env={"NETTOOLS_FORMAT": fmt})
    assert proc.returncode == 2, proc.stderr
    if fmt == "json":
        doc = json.loads(proc.stdout)
        rows = doc["links"]
        assert doc["summary"]["broken"] == len(doc["broken"])
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in proc.stdout.splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    bad = {r["url"] for r in rows if r["ok"] in (False, "False")}
    assert f"{base}/error" in bad and f"{base}/p/3.html" not in bad


def test_runtime_error_exit_1_in_one_line(sites, tmp_path):
    base, _ = sites
    proc = run_cli("crawl", base + "/", "-o", str(tmp_path / "no" / "such" / "dir" / "r.xml"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("nettools crawl: cannot write the report")
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["ftp://example.org/"],
        ["http://h/", "--format", "yaml"],
        ["http://h/", "--strategy", "sideways"],
        ["http://h/", "--scope", "galaxy"],
        ["http://h/", "--include", "("],
        ["http://h/", "--delay", "soon"],
        ["http://h/", "--concurrency", "0"],
        [],
    ],
)
def test_usage_errors_exit_2_in_one_line(args):
    proc = run_cli("crawl", *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_help_documents_the_exit_codes():
    proc = run_cli("crawl", "--help")
    assert proc.returncode == 0
    assert "2 broken links found" in " ".join(proc.stdout.split())


def test_a_start_url_outside_include_is_still_crawled(sites):
    base, _ = sites
    proc = run_cli("crawl", base + "/", "--max-body", "64K", "--include", "/p/")
    summary = last_json(proc.stderr)
    assert summary["pages"] == PAGES + 1, proc.stderr  # the start page and the /p/ pages


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_crawl_still_writes_the_report(tmp_path, sig):
    # Requests after the 20th hang until the end of the test: with two in flight
    # the crawl cannot go on by itself, so however late the signal is handled,
    # at most 22 requests arrive and the crawl ends only because of the signal
    # (the hanging requests are cut after the grace period).
    site = Site(400, page_sleep=0.03, retry_after=0)
    site.reach_at = site.hold_from = 20
    report = tmp_path / "report.json"
    with serve(site) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nettools", "crawl", srv.url + "/", "--concurrency", "2",
             "--format", "json", "-o", str(report)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
        )  # fmt: skip
        try:
            assert site.reached.wait(30), "the crawl never got going"
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        finally:
            site.release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        served = site.total
    doc = json.loads(report.read_text())
    assert doc["summary"]["stopped"] == "interrupted"
    assert 0 < doc["summary"]["pages"] < 400
    assert served <= 22
    assert "Traceback" not in err
    summary = next(json.loads(line) for line in err.splitlines() if line.startswith("{"))
    assert summary["stopped"] == "interrupted"
    # Broken links found before the signal decide between 2 and 1 (interrupted).
    assert proc.returncode == (2 if doc["broken"] else 1)
