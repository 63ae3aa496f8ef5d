"""The crawler's pure parts: URL normalisation, link extraction, scope, robots
and sitemaps, Retry-After, reports from a hand-made result."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from yarl import URL

from nettools.tools.crawl.links import extract
from nettools.tools.crawl.politeness import RetryPolicy, retry_after
from nettools.tools.crawl.report import FORMATS, write_report
from nettools.tools.crawl.results import Broken, CrawlResult, Fragment, Link
from nettools.tools.crawl.robots import Robots, parse_sitemap
from nettools.tools.crawl.scope import EXCLUDED, PAGE, Scope
from nettools.tools.crawl.urls import host_key, normalize

pytestmark = pytest.mark.timeout(10)


def norm(link: str, base: str | None = None) -> str | None:
    found = normalize(link, URL(base) if base else None)
    return None if found is None else str(found[0])


@pytest.mark.parametrize(
    ("link", "want"),
    [
        ("HTTP://Example.COM:80", "http://example.com/"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com/%7euser/", "http://example.com/~user/"),
        ("http://example.com/p/%33.html", "http://example.com/p/3.html"),
        ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/x/../y/./z#frag", "http://example.com/y/z"),
        ("http://example.com?q=1", "http://example.com/?q=1"),
        ("http://[::1]:80/x", "http://[::1]/x"),
    ],
)
def test_normalize_spellings_of_one_resource(link: str, want: str) -> None:
    assert norm(link) == want


def test_normalize_resolves_relative_links_and_keeps_the_fragment_apart() -> None:
    base = URL("http://h:81/dir/page.html")
    assert normalize("../x.html#a%20b", base) == (URL("http://h:81/x.html"), "a b")
    assert norm("//other.org/y", "http://h/d/") == "http://other.org/y"
    assert norm("?q=1", "http://h/d/p") == "http://h/d/p?q=1"


@pytest.mark.parametrize(
    "link", ["mailto:a@b.c", "javascript:void(0)", "data:text/plain,x", "ftp://h/f", "", "  "]
)
def test_normalize_drops_what_is_not_http(link: str) -> None:
    assert normalize(link, URL("http://h/")) is None


def test_host_key_ignores_default_ports_only() -> None:
    assert host_key(URL("http://h/")) == host_key(URL("https://h/")) == "h"
    assert host_key(URL("http://127.0.0.1:8000/")) == "127.0.0.1:8000"
    assert host_key(URL("http://[::1]:5/")) == "[::1]:5"


def test_extract_links_from_every_kind_of_element() -> None:
    html = b"""<html><head><link rel=stylesheet href="s.css"></head><body id="top">
    <a href="a.html#x">a</a><a name="n1"></a><a>no href</a><a href="">empty</a>
    <img src="i.png" srcset="i1.png 1x, i2.png 2x"><script src="//cdn.example/y.js"></script>
    <iframe src="f.html"></iframe><h2 id="sec 1">s</h2><area href="map.html">
    <p>text that looks like a link: href="/not-a-link.html"</p></body></html>"""
    page = extract(html, URL("http://h/d/p.html"))
    assert sorted(page.links) == sorted(
        ["s.css", "a.html#x", "i.png", "i1.png", "i2.png", "//cdn.example/y.js", "f.html",
         "map.html"]  # fmt: skip
    )
    assert page.anchors == {"top", "n1", "sec 1"}
    assert page.base == URL("http://h/d/p.html")


def test_extract_honours_base_href() -> None:
    page = extract(b'<head><base href="/sub/"></head><a href="x.html">', URL("http://h/d/p"))
    assert page.base == URL("http://h/sub/")
    assert normalize(page.links[0], page.base)[0] == URL("http://h/sub/x.html")


def test_scope_modes() -> None:
    seed = [URL("http://www.example.org/docs/index.html")]
    inside = URL("http://www.example.org/blog/")
    sub = URL("http://api.example.org/x")
    under = URL("http://www.example.org/docs/a/b.html")
    other = URL("http://example.net/")
    host = Scope(seed, "host")
    assert host.follows(inside) and host.follows(under) and not host.follows(sub)
    assert host.follows(URL("https://www.example.org/"))  # same host, other scheme
    domain = Scope(seed, "domain")
    assert domain.follows(sub) and domain.follows(inside) and not domain.follows(other)
    prefix = Scope(seed, "prefix")
    assert prefix.follows(under) and not prefix.follows(inside)
    assert Scope(seed, "any").follows(other)


def test_scope_include_and_exclude() -> None:
    scope = Scope([URL("http://h/")], include=[r"/docs/"], exclude=[r"\.pdf$"])
    assert scope.follows(URL("http://h/docs/a"))
    assert not scope.follows(URL("http://h/blog/a"))
    assert scope.excluded(URL("http://h/docs/a.pdf"))
    # A start URL outside --include is still crawled: include narrows what is followed.
    assert scope.kind_of("http://h/", URL("http://h/"), False) is None
    assert scope.kind_of("http://h/", URL("http://h/"), False, seed=True) == PAGE
    assert scope.kind_of("http://h/a.pdf", URL("http://h/a.pdf"), False, seed=True) == EXCLUDED
    with pytest.raises(ValueError, match="--include"):
        Scope([URL("http://h/")], include=["("])
    with pytest.raises(ValueError, match="unknown scope"):
        Scope([URL("http://h/")], "galaxy")


def test_robots_rules_and_crawl_delay() -> None:
    from protego import Protego

    text = "User-agent: *\nDisallow: /private/\nCrawl-delay: 1.5\nSitemap: http://h/s.xml\n"
    robots = Robots(Protego.parse(text), ["http://h/s.xml"])
    assert not robots.allowed(URL("http://h/private/x"), "nettools")
    assert robots.allowed(URL("http://h/public"), "nettools")
    assert robots.crawl_delay("nettools") == 1.5
    assert Robots().allowed(URL("http://h/private/x"), "nettools")


def test_parse_sitemap_and_index() -> None:
    urlset = (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
              b"<url><loc> http://h/a </loc></url><url><loc>http://h/b</loc></url></urlset>")
    assert parse_sitemap(urlset) == (["http://h/a", "http://h/b"], [])
    index = (b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             b"<sitemap><loc>http://h/s1.xml</loc></sitemap></sitemapindex>")
    assert parse_sitemap(index) == ([], ["http://h/s1.xml"])
    assert parse_sitemap(b"<html>not xml") == ([], [])


def test_retry_after_and_backoff() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("soon") is None and retry_after(None) is None
    policy = RetryPolicy(retries=2, base=0.5)
    assert [policy.backoff(0), policy.backoff(1), policy.backoff(2)] == [0.5, 1.0, None]
    assert policy.backoff(0, server_wait=3.0) == 3.0
    assert policy.backoff(0, server_wait=3600.0) is None  # not worth waiting for


def _result() -> CrawlResult:
    home = Link("http://h/", "page", 0, status=200, seed=True, content_type="text/html")
    gone = Link("http://h/gone", "page", 1, status=404)
    gone.add_referrer("http://h/")
    ok = Link("http://h/ok", "page", 1, status=200)
    ok.add_referrer("http://h/")
    private = Link("http://h/private/", "page", 1, skipped="robots")
    private.add_referrer("http://h/")
    broken = [Broken("http://h/gone", "HTTP 404", 404, ["http://h/"], 1, "page"),
              Broken("http://h/ok#nope", "missing anchor", None, ["http://h/"], 1, "fragment")]
    fragments = [Fragment("http://h/ok#nope", False, ["http://h/"])]
    return CrawlResult([home, gone, ok, private], broken, fragments, "recursive", 1.0, None)


def test_reports_in_every_format_name_the_broken_links_and_their_referrers() -> None:
    for fmt in FORMATS:
        out = io.StringIO()
        write_report(_result(), fmt, out)
        assert "http://h/gone" in out.getvalue(), fmt
    out = io.StringIO()
    write_report(_result(), "jsonl", out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {r["url"]: r["ok"] for r in rows} == {
        "http://h/": True, "http://h/gone": False, "http://h/ok": True,
        "http://h/private/": True, "http://h/ok#nope": False,
    }  # fmt: skip
    out = io.StringIO()
    write_report(_result(), "csv", out)
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["url"] for r in table if r["ok"] == "False"] == ["http://h/gone", "http://h/ok#nope"]
    out = io.StringIO()
    write_report(_result(), "junit", out)
    suite = ET.fromstring(out.getvalue()).find("testsuite")
    assert suite.get("tests") == "5" and suite.get("failures") == "2"
    assert suite.get("skipped") == "1"
    with pytest.raises(ValueError, match="unknown format"):
        write_report(_result(), "yaml", io.StringIO())
