"""Links in CSS are followed, links to schemes the crawl does not fetch are named,
as a user sees it on the command line: a site with a stylesheet that imports
another, fonts and images named only from CSS, a ``<style>`` element, a
``style`` attribute, and ``file:``, ``mailto:`` and ``ftp:`` links."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from helpers.cli import run_cli
from helpers.crawl_site import Recorder, serve

pytestmark = pytest.mark.timeout(60)

HOME = b"""<!doctype html><html><head><title>home</title>
<link rel=stylesheet href="/css/site.css">
<style>
  header { background: url(/img/inline-style.png) }
  /* footer { background: url(/img/never-comment.png) } */
</style></head><body>
<div style="background-image: URL('/img/attr.png'); content: 'url(/img/never-string.png)'">x</div>
<a href="file:///home/me/notes.html">my notes</a>
<a href="mailto:docs@example.org">write to us</a>
<a href="ftp://files.example.org/pub/x.tar.gz">download</a>
<a href="javascript:void(0)">menu</a>
</body></html>"""

SITE_CSS = b"""@charset "utf-8";
@import "print.css" print;
body { background: #fff url(../img/bg.png) no-repeat }
@font-face { font-family: F; src: url("/fonts/f.woff2") format("woff2"), url(/fonts/f.woff) }
/* .old { background: url(/img/never-comment2.png) } */
.quote::before { content: "url(/img/never-content.png)" }
.gone { background: url(/img/missing.png) }
"""

PRINT_CSS = b""".logo { background: url(data:image/png;base64,iVBORw0KGgo=) }
@media print { .logo { background-image: image-set("/img/print.png" 1x, url(/img/print2.png) 2x) } }
"""

FOUND_ONLY_THROUGH_CSS = {"/css/site.css", "/css/print.css", "/img/bg.png", "/fonts/f.woff2",
                          "/fonts/f.woff", "/img/missing.png", "/img/print.png", "/img/print2.png",
                          "/img/inline-style.png", "/img/attr.png"}  # fmt: skip
SCHEMES = {"file:///home/me/notes.html": "file", "mailto:docs@example.org": "mailto",
           "ftp://files.example.org/pub/x.tar.gz": "ftp"}  # fmt: skip


class CssSite(Recorder):
    def __call__(self, environ: dict, start_response) -> list[bytes]:
        host = self.enter(environ)
        path = environ["PATH_INFO"]
        try:
            if path == "/":
                start_response("200 OK", [("Content-Type", "text/html")])
                return [HOME]
            if path in ("/css/site.css", "/css/print.css"):
                start_response("200 OK", [("Content-Type", "text/css; charset=utf-8")])
                return [SITE_CSS if path == "/css/site.css" else PRINT_CSS]
            if path in FOUND_ONLY_THROUGH_CSS - {"/img/missing.png"}:
                start_response("200 OK", [("Content-Type", "image/png")])
                return [b"\x89PNG"]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        finally:
            self.leave(host, path)


@pytest.fixture(scope="module")
def site():
    app = CssSite()
    with serve(app) as srv:
        yield app, srv.url


def crawl(site, *args: str, state: tuple[str, ...] = ()):
    app, base = site
    app.reset()
    return run_cli("crawl", *state, base + "/", "--check-links", *args)


def test_links_in_stylesheets_style_elements_and_attributes_are_followed(site, state):
    app, base = site
    proc = crawl(site, "--format", "json", state=state)
    assert proc.returncode == 2, proc.stderr
    assert app.paths() == {"/robots.txt", "/"} | FOUND_ONLY_THROUGH_CSS
    assert not [p for (_, p) in app.counts if "never" in p or "data:" in p]
    doc = json.loads(proc.stdout)
    (broken,) = doc["broken"]
    assert broken["url"] == base + "/img/missing.png"
    assert broken["referrers"] == [base + "/css/site.css"]  # resolved against the stylesheet


def test_other_schemes_are_skipped_scheme_in_the_text_report(site, state):
    proc = crawl(site, state=state)
    lines = proc.stdout.splitlines()
    for url, scheme in SCHEMES.items():
        at = lines.index(f"SKIPPED {url}  (scheme: {scheme})")
        assert lines[at + 1] == f"  linked from: {site[1]}/"
    assert "javascript" not in proc.stdout
    assert "3 skipped (scheme)" in lines[-1]
    assert json.loads(proc.stderr.splitlines()[-1])["scheme_skipped"] == 3


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_other_schemes_are_skipped_scheme_in_the_machine_formats(site, fmt):
    proc = crawl(site, "--format", fmt)
    if fmt == "json":
        rows = json.loads(proc.stdout)["links"]
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in proc.stdout.splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    reasons = {r["url"]: r["reason"] for r in rows if r["url"] in SCHEMES}
    assert reasons == dict.fromkeys(SCHEMES, "skipped: scheme")


def test_other_schemes_are_skipped_test_cases_in_junit(site, tmp_path):
    report = tmp_path / "links.xml"
    crawl(site, "--format", "junit", "-o", str(report))
    suite = ET.parse(report).getroot().find("testsuite")
    skipped = {c.get("name"): c.find("skipped").get("message") for c in suite.iter("testcase")
               if c.find("skipped") is not None}  # fmt: skip
    assert skipped == dict.fromkeys(SCHEMES, "scheme")
    assert suite.get("skipped") == "3"


def test_exclude_drops_links_and_include_narrows_what_is_crawled(site, state):
    app, base = site
    proc = crawl(site, "--format", "jsonl", "--exclude", "^mailto:", "--exclude", r"/fonts/",
                 "--include", r"/$|\.css$", state=state)  # fmt: skip
    urls = {json.loads(line)["url"] for line in proc.stdout.splitlines()}
    assert "mailto:docs@example.org" not in urls and "file:///home/me/notes.html" in urls
    assert not [p for (_, p) in app.counts if p.startswith("/fonts/")]  # never requested
    # Outside --include, the images are checked as links that leave the site: one HEAD each.
    assert ("HEAD", "/img/bg.png") in app.counts and ("GET", "/img/bg.png") not in app.counts
    assert ("GET", "/css/print.css") in app.counts
    assert base + "/img/print.png" in urls


@pytest.mark.parametrize("option", ["--exclude", "--include"])
def test_a_bad_regex_is_a_usage_error_in_one_line(option):
    proc = run_cli("crawl", "http://127.0.0.1:9/", option, "(")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"nettools crawl: Invalid value: {option} '(': ")
    assert len(proc.stderr.splitlines()) == 1
