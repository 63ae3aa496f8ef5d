"""The crawler recipes, each run as a program against a site served locally (the CI
recipes serve their own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.crawl_site import Site, serve
from helpers.paths import RECIPES

pytestmark = pytest.mark.timeout(60)

PAGES = 60


def run(*cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=45, env={**os.environ, **(env or {})}
    )


def crawled_urls(stdout: str) -> list[str]:
    """The URL of each "STATUS URL" line."""
    return [line.split()[1] for line in stdout.splitlines()]


@pytest.mark.parametrize("recipe", ["recursive_crawler.py", "producer_consumer.py"])
def test_recipe_has_a_docstring_and_help(recipe):
    assert (RECIPES / recipe).read_text().startswith('"""')
    assert "Run it:" in (RECIPES / recipe).read_text()
    proc = run(sys.executable, str(RECIPES / recipe), "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout


def test_both_crawler_recipes_find_the_same_pages_each_once():
    found = {}
    for recipe in ("recursive_crawler.py", "producer_consumer.py"):
        site = Site(PAGES, retry_after=0, slow=0.01, plain_links=True)
        with serve(site) as srv:
            proc = run(sys.executable, str(RECIPES / recipe), srv.url + "/")
            assert proc.returncode == 0, proc.stderr
            urls = crawled_urls(proc.stdout)
            assert len(urls) == len(set(urls))  # each URL fetched once
            assert {f"{srv.url}/p/{i}.html" for i in range(PAGES)} <= set(urls)
            assert f"{len(urls)} pages" in proc.stderr
            found[recipe] = {u[len(srv.url):] for u in urls}
    assert found["recursive_crawler.py"] == found["producer_consumer.py"]


def linkcheck(*args: str, report: Path) -> subprocess.CompletedProcess:
    env = {"NETTOOLS": f"{sys.executable} -m nettools", "PYTHON": sys.executable,
           "REPORT": str(report)}  # fmt: skip
    return run("bash", str(RECIPES / "ci-linkcheck.sh"), *args, env=env)


def test_ci_linkcheck_passes_a_site_whose_links_are_fine(tmp_path):
    report = tmp_path / "report.xml"
    proc = linkcheck(report=report)
    assert proc.returncode == 0, proc.stderr
    assert "ci-linkcheck: ok" in proc.stdout
    server = json.loads(proc.stdout.split("server summary: ", 1)[1].splitlines()[0])
    assert server["service"] == "static" and server["requests"] >= 4  # nettools static served
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) >= 4


def test_ci_linkcheck_fails_the_job_on_broken_links(tmp_path):
    site = tmp_path / "public"
    site.mkdir()
    (site / "index.html").write_text('<a href="gone.html">x</a> <a href="ok.html#nope">y</a>'
                                     '<a href="ok.html">z</a>')  # fmt: skip
    (site / "ok.html").write_text("<p id=yes>ok</p>")
    report = tmp_path / "report.xml"
    proc = linkcheck(str(site), report=report)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert any(line.strip().endswith("/gone.html") for line in lines), proc.stderr
    assert any(line.strip().endswith("/ok.html#nope") for line in lines), proc.stderr
    suite = ET.parse(report).getroot().find("testsuite")
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert sorted(n.rsplit("/", 1)[1] for n in failed) == ["gone.html", "ok.html#nope"]


def test_ci_linkcheck_passes_extra_options_to_the_crawl(tmp_path):
    site = tmp_path / "public"
    site.mkdir()
    (site / "index.html").write_text('<a href="gone.html">x</a> <a href="drafts/a.html">y</a>'
                                     '<a href="file:///home/me/x.html">z</a>')  # fmt: skip
    report = tmp_path / "report.xml"
    # --exclude: the broken link is not checked, so the job passes.
    proc = linkcheck(str(site), "--exclude", r"gone\.html$", "--exclude", "/drafts/",
                     report=report)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = {c.get("name") for c in ET.parse(report).getroot().iter("testcase")}
    assert not [n for n in names if "gone" in n or "drafts" in n]
    assert "file:///home/me/x.html" in names  # named, skipped: scheme
    # Without it the same site fails the job.
    assert linkcheck(str(site), report=report).returncode == 1


def distributed(*args: str, report: Path, workers: int = 3) -> subprocess.CompletedProcess:
    env = {"NETTOOLS": f"{sys.executable} -m nettools", "PYTHON": sys.executable,
           "REPORT": str(report), "WORKERS": str(workers)}  # fmt: skip
    return run("bash", str(RECIPES / "ci-distributed-crawl.sh"), *args, env=env)


def test_ci_distributed_crawl_checks_a_site_with_three_workers(tmp_path):
    report = tmp_path / "report.xml"
    proc = distributed(report=report)
    assert proc.returncode == 0, proc.stderr
    assert "ci-distributed-crawl: ok, no broken links (3 workers)" in proc.stdout
    summary = json.loads(proc.stdout.split("crawl summary: ", 1)[1].splitlines()[0])
    assert summary["pages"] == 41 and summary["broken"] == 0  # home and docs/0..39
    jobs = summary["workers"]["jobs"]
    assert set(jobs) == {"worker1", "worker2", "worker3"}
    assert sum(jobs.values()) == summary["requests"]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("skipped") == "1"  # robots.txt: /private/
    assert int(suite.get("tests")) > 41


def test_ci_distributed_crawl_fails_the_job_on_broken_links(tmp_path):
    site = tmp_path / "public"
    site.mkdir()
    (site / "index.html").write_text('<a href="gone.html">x</a> <a href="ok.html#nope">y</a>'
                                     '<a href="ok.html">z</a>')  # fmt: skip
    (site / "ok.html").write_text("<p id=yes>ok</p>")
    report = tmp_path / "report.xml"
    proc = distributed(str(site), report=report, workers=2)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.strip().endswith("/gone.html") for line in lines), proc.stderr
    assert any(line.strip().endswith("/ok.html#nope") for line in lines), proc.stderr
    suite = ET.parse(report).getroot().find("testsuite")
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert sorted(n.rsplit("/", 1)[1] for n in failed) == ["gone.html", "ok.html#nope"]
