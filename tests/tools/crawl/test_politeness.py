"""Politeness and limits, observed by the server: robots.txt Crawl-delay, --delay,
429 Retry-After, depth, page and time limits, sitemaps, exclusions, stop(), and
what a running crawl reports and how a signal stops it."""

from __future__ import annotations

import pytest
from helpers.crawl_site import Pages, Site, assert_spaced, serve
from helpers.isolated import run_code

import nettools
from nettools.tools.crawl import STRATEGIES, Crawler, Progress

pytestmark = pytest.mark.timeout(30)


def crawl(site: Site, path: str = "/", **kw):
    """Crawl ``site`` from ``path``; returns (result, base URL, host key)."""
    kw.setdefault("max_body", 64 * 1024)
    with serve(site) as srv:
        result = Crawler([srv.url + path], **kw).run()
        return result, srv.url, srv.url.split("//")[1]


def small_site(**kw) -> Site:
    kw.setdefault("retry_after", 0)
    kw.setdefault("slow", 0.01)
    kw.setdefault("huge", 1000)
    return Site(12, **kw)


def test_robots_crawl_delay_spaces_requests_to_the_host() -> None:
    site = small_site(crawl_delay=0.05)
    crawl(site, per_host=8)
    assert_spaced(site, 0.05)


def test_ignore_robots_requests_disallowed_pages_at_full_speed() -> None:
    site = small_site(crawl_delay=0.05, page_sleep=0.01)
    result, _, host = crawl(site, per_host=8, robots=False)
    assert ("GET", "/private/secret.html") in site.counts
    assert ("GET", "/robots.txt") not in site.counts
    assert site.max_inflight[host] > 1
    assert not [lk for lk in result.links if lk.skipped == "robots"]


def test_delay_option_spaces_requests() -> None:
    site = small_site()
    crawl(site, per_host=8, delay=0.03)
    assert_spaced(site, 0.03)


def test_429_waits_for_retry_after_and_holds_the_whole_host() -> None:
    # One request at a time (--per-host 1), so every request the server gets
    # after it answered the 429 was sent after the crawler had read that 429:
    # each must arrive at or after the deadline the server set (its answer time
    # plus Retry-After, both on its own clock).  Load can only make requests
    # later, so this holds however slow the machine is, and it fails if the
    # retry came early or if other pages of the host went on meanwhile.
    site = small_site(retry_after=1, page_sleep=0.005)
    result, base, _ = crawl(site, retries=2, per_host=1)
    deadline = site.answered["/busy"][0] + 1
    refused, retried = sorted(site.started["/busy"])
    assert retried >= deadline
    after_refusal = [t for ts in site.started.values() for t in ts if t > refused]
    assert len(after_refusal) > 5  # the rest of the site came after the 429
    assert [t for t in after_refusal if t < deadline] == []
    busy = next(lk for lk in result.links if lk.url == base + "/busy")
    assert busy.status == 200 and busy.attempts == 2


def test_429_without_retries_is_a_broken_link() -> None:
    site = small_site()
    result, base, _ = crawl(site, retries=0)
    assert site.counts[("GET", "/busy")] == 1
    assert {b.url: b.reason for b in result.broken}[base + "/busy"] == "HTTP 429"


@pytest.mark.parametrize("concurrency", [1, 64])
def test_depth_limit_is_the_same_for_every_strategy_and_concurrency(concurrency: int) -> None:
    found = []
    for strategy in STRATEGIES:
        site = Site(200, retry_after=0, slow=0.0, page_sleep=0.0)
        result, base, _ = crawl(site, depth=2, strategy=strategy, concurrency=concurrency)
        pages = {lk.url[len(base):]: lk.depth for lk in result.pages}
        assert max(pages.values()) == 2
        # Home links /p/0 and (img, srcset) /p/1-3; their children are depth 2.
        assert pages["/p/0.html"] == 1 and pages["/p/3.html"] == 1
        assert pages["/p/7.html"] == 2 and "/p/15.html" not in pages
        assert site.paths() - {"/robots.txt"} == set(pages)
        found.append(pages)
    assert found[0] == found[1]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_shorter_path_found_later_lowers_the_depth(strategy: str) -> None:
    # /target is first reached the long way (depth 3, its links too deep to follow);
    # the hub, which answers only once /target has been requested, then shows a
    # path of depth 2, so /target's links become depth 3.
    site = Pages({
        "/": (["/slow-hub.html", "/a.html"], 0.0),
        "/slow-hub.html": (["/target.html"], "/target.html"),
        "/a.html": (["/b.html"], 0.0),
        "/b.html": (["/target.html"], 0.0),
        "/target.html": (["/child.html"], 0.0),
        "/child.html": (["/grandchild.html"], 0.0),
    })  # fmt: skip
    result, base, _ = crawl(site, depth=3, strategy=strategy)
    depths = {lk.url[len(base):]: lk.depth for lk in result.pages}
    assert depths["/target.html"] == 2
    assert depths["/child.html"] == 3
    assert "/grandchild.html" not in depths and "/grandchild.html" not in site.paths()
    # The long way really came first: /target was requested before the hub answered.
    assert min(site.started["/target.html"]) < site.answered["/slow-hub.html"][0]


def test_max_pages_bounds_the_requests() -> None:
    site = Site(200, retry_after=0, page_sleep=0.0)
    result, _, _ = crawl(site, max_pages=10, concurrency=4)
    robots_skipped = [lk for lk in result.links if lk.skipped == "robots"]
    assert len(result.pages) + len(robots_skipped) == 10  # the home page links /private/
    assert len(site.paths() - {"/robots.txt"}) == len(result.pages)
    assert result.summary()["over_limit"] > 0


def test_sitemap_seeds_pages_no_link_reaches() -> None:
    site = small_site()
    result, base, _ = crawl(site)
    assert base + "/orphan.html" not in result.page_urls()
    site = small_site()
    result, base, _ = crawl(site, sitemap=True)
    assert base + "/orphan.html" in result.page_urls()
    assert site.counts[("GET", "/sitemap.xml")] == 1


def test_excluded_urls_are_never_requested() -> None:
    site = small_site()
    result, _, _ = crawl(site, exclude=[r"/p/\d*[13579]\.html$", r"/error"])
    odd = [p for p in site.paths() if p.startswith("/p/") and int(p[3:-5]) % 2]
    assert odd == [] and "/error" not in site.paths()
    assert result.summary()["excluded"] > 0


def test_stop_lets_nothing_new_start() -> None:
    site = Site(400, page_sleep=0.03, retry_after=0)
    with serve(site) as srv:
        crawler = Crawler([srv.url + "/"], concurrency=2, per_host=2)

        seen_at_stop = []

        def stop_after_20_requests() -> None:
            for _ in range(500):
                if site.total >= 20:
                    break
                nettools.sleep(0.01)
            seen_at_stop.append(site.total)
            crawler.stop()

        nettools.spawn(stop_after_20_requests)
        result = crawler.run()
    assert result.stopped == "interrupted"
    # Only what was in flight when stop() came (2 at most) could still reach the server.
    assert seen_at_stop[0] >= 20
    assert site.total <= seen_at_stop[0] + 2
    assert 0 < len(result.pages) < 400
    assert any(lk.skipped == "stopped" for lk in result.links)


def test_reporting_shows_a_running_crawl_and_ends_with_the_block() -> None:
    site = Site(100, retry_after=0)
    with serve(site) as srv:
        crawler = Crawler([srv.url + "/"], concurrency=2, per_host=2)
        seen: list[Progress] = []

        def show(progress: Progress) -> None:
            seen.append(progress)
            if progress.done >= 10:  # the display saw the crawl under way
                crawler.stop("seen")

        with crawler.reporting(show, every=0.001):
            result = crawler.run()
        shown = len(seen)
        nettools.sleep(0.05)  # fifty periods: a ticker left running would show more
    assert result.stopped == "seen"
    assert len(seen) == shown
    assert all(p.done <= p.admitted for p in seen)
    for figure in ("done", "admitted", "requests"):
        values = [getattr(p, figure) for p in seen]
        assert values == sorted(values), figure


def test_a_signal_inside_stop_on_signals_stops_the_crawl_politely() -> None:
    # In a child process: a SIGINT that found no handler would end the test run.
    site = Site(100, retry_after=0)
    with serve(site) as srv:
        proc = run_code(f"""
            import os, signal
            from nettools.tools.crawl import Crawler
            crawler = Crawler([{srv.url + "/"!r}], concurrency=2, per_host=2)

            def show(progress):
                if progress.done >= 10:
                    os.kill(os.getpid(), signal.SIGINT)

            with crawler.stop_on_signals(), crawler.reporting(show, every=0.001):
                result = crawler.run()
            print(result.stopped, 0 < len(result.pages) < 100)
            print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["interrupted", "True", "True"]


def test_max_time_stops_the_crawl() -> None:
    # After its 10th request the site stops answering, so the crawl cannot end
    # by itself however fast or slow the machine is: only --max-time ends it.
    site = Site(400, page_sleep=0.03, retry_after=0)
    site.hold_from = 10
    result, _, _ = crawl(site, max_time=1.0, concurrency=2, per_host=2, grace=0.1)
    assert result.stopped == "max-time"
    assert 0 < len(result.pages) < 10


def test_slow_page_times_out_is_retried_then_reported() -> None:
    site = small_site(slow=0.5)
    result, base, _ = crawl(site, timeout=0.1, retries=1, backoff=0.01)
    assert site.counts[("GET", "/slow.html")] == 2  # the first try and one retry
    slow = next(lk for lk in result.links if lk.url == base + "/slow.html")
    assert slow.attempts == 2
    assert {b.url: b.reason for b in result.broken}[base + "/slow.html"].startswith("timeout")


def test_slow_page_within_the_timeout_is_fine() -> None:
    site = small_site(slow=0.2)
    result, base, _ = crawl(site, timeout=5.0)
    assert site.counts[("GET", "/slow.html")] == 1
    assert base + "/slow.html" not in {b.url for b in result.broken}


def test_user_agent_is_sent_with_every_request() -> None:
    site = small_site()
    crawl(site, user_agent="linkbot/1.0 (+https://example.org/bot)")
    assert site.agents == {"linkbot/1.0 (+https://example.org/bot)"}
