"""The Crawler from Python against a generated site of 2,000+ pages served
locally; the site counts what it is asked for.  Each strategy crawls the site
once (module fixture) and the tests read those two runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from helpers.crawl_site import MISSING_EVERY, External, Site, serve

from nettools.tools.crawl import STRATEGIES, Crawler, CrawlResult

pytestmark = pytest.mark.timeout(60)

PAGES = 2000
PER_HOST = 4


@dataclass
class Run:
    result: CrawlResult
    counts: Counter  # (method, path) -> requests the site saw
    max_inflight: int
    ext_counts: Counter
    agents: set


@dataclass
class Crawled:
    base: str
    ext: str
    site: Site
    runs: dict[str, Run]

    def broken(self, strategy: str) -> dict:
        return {b.url: b for b in self.runs[strategy].result.broken}


@pytest.fixture(scope="module")
def crawled():
    site, ext = Site(PAGES), External()
    with serve(ext) as ext_srv:
        site.external = ext_srv.url
        with serve(site) as srv:
            runs = {}
            for strategy in STRATEGIES:
                site.reset()
                ext.reset()
                result = Crawler(
                    [srv.url + "/"], strategy=strategy, per_host=PER_HOST, check_links=True,
                    check_fragments=True, max_body=64 * 1024,
                ).run()  # fmt: skip
                host = srv.url.split("//")[1]
                runs[strategy] = Run(result, Counter(site.counts), site.max_inflight[host],
                                     Counter(ext.counts), set(site.agents))  # fmt: skip
            yield Crawled(srv.url, ext_srv.url, site, runs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_whole_site_is_found(crawled: Crawled, strategy: str) -> None:
    result = crawled.runs[strategy].result
    assert result.stopped is None
    assert result.page_urls() == crawled.site.expected_pages(crawled.base)
    assert len(result.pages) > PAGES


def test_both_strategies_find_exactly_the_same_pages_and_links(crawled: Crawled) -> None:
    recursive, pc = (crawled.runs[s].result for s in STRATEGIES)
    assert recursive.page_urls() == pc.page_urls()
    assert [lk.url for lk in recursive.links] == [lk.url for lk in pc.links]
    assert crawled.broken("recursive").keys() == crawled.broken("producer-consumer").keys()
    assert crawled.runs["recursive"].counts == crawled.runs["producer-consumer"].counts


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_url_is_fetched_twice(crawled: Crawled, strategy: str) -> None:
    counts = crawled.runs[strategy].counts
    assert counts[("GET", "/robots.txt")] == 1
    assert counts[("GET", "/busy")] == 2  # refused once with 429, then retried
    twice = {k: n for k, n in counts.items() if n > 1 and k[1] != "/busy"}
    assert twice == {}
    # Every spelling of a tree page (upper-case host, ./x#top, /%70/...) was one fetch.
    assert sum(1 for (_, p) in counts if p.startswith("/p/")) == PAGES


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_per_host_concurrency_never_exceeds_the_limit(crawled: Crawled, strategy: str) -> None:
    # More than one at a time (the crawl is concurrent), never more than the limit.
    assert 1 < crawled.runs[strategy].max_inflight <= PER_HOST


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_disallowed_paths_are_never_requested(crawled: Crawled, strategy: str) -> None:
    run = crawled.runs[strategy]
    assert not [p for (_, p) in run.counts if p.startswith("/private")]
    skipped = {lk.url for lk in run.result.links if lk.skipped == "robots"}
    assert skipped == {crawled.base + "/private/secret.html", crawled.base + "/private/"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_broken_links_are_reported_with_their_referrers(crawled: Crawled, strategy: str) -> None:
    base, home = crawled.base, crawled.base + "/"
    broken = crawled.broken(strategy)
    missing = {
        f"{base}/missing/{i}.html": f"{base}/p/{i}.html" for i in range(0, PAGES, MISSING_EVERY)
    }
    expected = {
        f"{base}/missing.html": "HTTP 404",
        f"{base}/error": "HTTP 500",
        f"{crawled.ext}/gone.html": "HTTP 404",
        f"{base}/frag.html#nope": "missing anchor",
        **{url: "HTTP 404" for url in missing},
    }
    assert set(broken) == set(expected) | {f"{base}/loop/a"}
    for url, reason in expected.items():
        assert broken[url].reason == reason
    for url, page in missing.items():
        assert broken[url].referrers == [page]
    assert broken[f"{base}/missing.html"].referrers == [home]
    assert broken[f"{crawled.ext}/gone.html"].referrers == [home]
    assert broken[f"{base}/frag.html#nope"].referrers == [home]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_redirects_are_followed_and_a_loop_is_broken(crawled: Crawled, strategy: str) -> None:
    run = crawled.runs[strategy]
    links = {lk.url: lk for lk in run.result.links}
    base = crawled.base
    assert links[base + "/old"].status == 301
    assert links[base + "/old"].redirect == base + "/p/5.html"
    assert f"{base}/old" not in crawled.broken(strategy)
    loop = crawled.broken(strategy)[f"{base}/loop/a"]
    assert loop.reason.startswith("redirect loop")
    assert run.counts[("GET", "/loop/a")] == run.counts[("GET", "/loop/b")] == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_what_is_not_parsed_or_not_read(crawled: Crawled, strategy: str) -> None:
    run = crawled.runs[strategy]
    paths = {p for (_, p) in run.counts}
    # Non-HTML bodies are not parsed for links.
    assert "/never-from-pdf.html" not in paths and "/never-from-json.html" not in paths
    # The huge page is cut at max_body: its first link is followed, its last never seen.
    assert "/huge-early.html" in paths and "/huge-late.html" not in paths
    huge = next(lk for lk in run.result.links if lk.url.endswith("/huge.html"))
    assert huge.truncated and huge.size == 64 * 1024
    # <base href="/p/"> made "1.html" on /based/index.html mean /p/1.html.
    assert "/based/1.html" not in paths
    # mailto: and javascript: links are not requests.
    assert not [p for p in paths if "mailto" in p or "javascript" in p]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_links_leaving_the_site_are_checked_once_never_crawled(crawled: Crawled, strategy: str):
    ext = crawled.runs[strategy].ext_counts
    assert ext == Counter({
        ("GET", "/ok.html"): 1,  # linked to as ok.html#x: GET, to read its anchors
        ("HEAD", "/gone.html"): 1,  # a 404 to HEAD is the answer: no GET
        ("HEAD", "/nohead.html"): 1, ("GET", "/nohead.html"): 1,  # 405: HEAD not supported
    })  # fmt: skip
    links = {lk.url: lk for lk in crawled.runs[strategy].result.links}
    assert links[crawled.ext + "/nohead.html"].status == 200
    assert links[crawled.ext + "/ok.html"].kind == "external"


def test_fragments_that_exist_pass(crawled: Crawled) -> None:
    frags = {f.url: f.ok for f in crawled.runs["recursive"].result.fragments}
    base = crawled.base
    assert frags[f"{base}/frag.html#sec1"] and frags[f"{base}/frag.html#n2"]
    assert frags[f"{crawled.ext}/ok.html#x"]  # on a page outside the site
    assert not frags[f"{base}/frag.html#nope"]


def test_summary_counts(crawled: Crawled) -> None:
    run = crawled.runs["recursive"]
    summary = run.result.summary()
    assert summary["pages"] == len(crawled.site.expected_pages(crawled.base))
    assert summary["broken"] == len(run.result.broken)
    assert summary["redirects"] == 3  # /old, /loop/a, /loop/b
    assert summary["robots_skipped"] == 2 and summary["truncated"] == 1
    assert summary["bytes"] > 0 and summary["pages_per_s"] > 0
    assert summary["requests"] == sum(run.counts.values()) + sum(run.ext_counts.values())
    assert all(a.startswith("nettools/") for a in run.agents)
