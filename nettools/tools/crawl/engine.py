"""The crawl engine: one set of rules, two ways to schedule the work.

    from nettools.tools.crawl import Crawler

    result = Crawler(["https://docs.example/"], check_links=True).run()
    for broken in result.broken:
        print(broken.url, broken.reason, broken.referrers)

Everything a crawl decides -- normalising and de-duplicating URLs, scope,
depth, robots.txt, politeness, retries, what counts as broken -- lives in
``Crawler._visit`` and ``Crawler._admit``.  The strategies only differ in how
newly found URLs get a greenthread:

* ``recursive``: each visit spawns the visits of the links it found into one
  GreenPool of ``concurrency``; the crawl is done when the pool is idle.  When
  the pool is full the finder queues the links and every greenthread takes
  queued links before it exits (iteratively: a deep site never deepens the
  stack).
* ``producer-consumer``: a frontier Queue, fed by the visits, drained by
  ``concurrency`` workers; the crawl is done when the queue has been joined.

Both visit the same set of URLs: a URL is admitted once, whatever order the
links arrive in, and a page first met deeper than ``depth`` is admitted
later if a shorter path to it turns up (depths are kept minimal).

Redirects of pages are not followed by the client: a redirect is recorded on
the page and its target becomes a URL like any link (same depth, scope and
robots checks), so every hop is fetched once and loops show up in the graph.
Links that leave the scope are checked (``check_links``) with one HEAD each,
retried as GET when HEAD fails, following redirects; they are never parsed
and, like a reader following one link, do not consult robots.txt.

A link is broken when its request failed (after retries), answered 4xx/5xx,
or redirects into a loop, a chain longer than 10, or a broken page; with
``check_fragments`` also when its ``#fragment`` names no id on an HTML page.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from ...kernel.greenthread import sleep, spawn, spawn_after
from ...kernel.pool import GreenPool
from ...kernel.queue import Queue
from ...web.client import FetchError, HttpClient
from ..fetch import Halt
from .fetcher import Fetched, Fetcher, LocalFetcher, crawl_client
from .politeness import HostGates, RetryPolicy, retry_after
from .robots import RobotsCache, parse_sitemap
from .scope import Scope
from .urls import host_key, normalize, origin

__all__ = ["Crawler", "CrawlResult", "Link", "Broken", "STRATEGIES"]

log = logging.getLogger("nettools.crawl")

STRATEGIES = ("recursive", "producer-consumer")
#: Transport failures worth another try; dns, tls and refused addresses are not.
TRANSIENT = frozenset({"timeout", "connect", "protocol", "other"})
RETRY_STATUSES = frozenset({429, 503})
#: Links followed through a chain of page redirects before giving up.
MAX_REDIRECT_CHAIN = 10
#: Referrers kept per link (the count is always exact).
MAX_REFERRERS = 100
#: Sitemaps read per crawl (sitemap indexes can nest).
MAX_SITEMAPS = 50
#: Bytes of a GET that only checks a link (its body is not used).
CHECK_BODY = 64 * 1024


@dataclass
class Link:
    """One URL the crawl met, and what became of it."""

    url: str
    kind: str  # "page" (in scope: fetched and parsed) or "external" (checked only)
    depth: int
    status: int | None = None
    error: str | None = None
    content_type: str = ""
    size: int = 0
    truncated: bool = False
    redirect: str | None = None  # where a page redirects (normalised)
    final_url: str | None = None
    skipped: str | None = None  # "robots" or "stopped": never requested
    method: str = ""
    attempts: int = 0
    elapsed: float = 0.0
    seed: bool = False
    referrers: list[str] = field(default_factory=list)
    referrer_count: int = 0
    redirected_from: list[str] = field(default_factory=list)
    # Bookkeeping, not part of the result.
    _url: Any = field(default=None, repr=False, compare=False)
    _last_referrer: str | None = field(default=None, repr=False, compare=False)
    _children: list | None = field(default=None, repr=False, compare=False)
    _anchors: set | None = field(default=None, repr=False, compare=False)

    @property
    def requested(self) -> bool:
        return self.status is not None or self.error is not None

    @property
    def checked(self) -> bool:
        """A link a page, the command line or a sitemap names (the hops of a
        redirect chain belong to the link that starts it)."""
        return bool(self.referrer_count or self.seed)

    def add_referrer(self, url: str) -> None:
        # A page's links are admitted in one go (no other page's in between)
        # and each page once, so a referrer seen before is the last one seen:
        # one comparison, and the count stays exact past MAX_REFERRERS.
        if url == self._last_referrer:
            return
        self._last_referrer = url
        self.referrer_count += 1
        if len(self.referrers) < MAX_REFERRERS:
            self.referrers.append(url)

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "kind": self.kind,
            "depth": self.depth,
            "status": self.status,
            "error": self.error,
            "content_type": self.content_type,
            "size": self.size,
            "truncated": self.truncated,
            "redirect": self.redirect,
            "final_url": self.final_url,
            "skipped": self.skipped,
            "method": self.method,
            "attempts": self.attempts,
            "elapsed": round(self.elapsed, 6),
            "referrers": self.referrers,
            "referrer_count": self.referrer_count,
        }


@dataclass
class Broken:
    """A link that failed: ``reason`` is one line, ``referrers`` the pages linking to it."""

    url: str
    reason: str
    status: int | None
    referrers: list[str]
    referrer_count: int
    kind: str  # "page", "external" or "fragment"

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "reason": self.reason,
            "status": self.status,
            "kind": self.kind,
            "referrers": self.referrers,
            "referrer_count": self.referrer_count,
        }


@dataclass
class Fragment:
    """A ``#fragment`` link that was checked against its page's anchors."""

    url: str
    ok: bool
    referrers: list[str]


@dataclass
class CrawlResult:
    """What a crawl found."""

    links: list[Link]
    broken: list[Broken]
    fragments: list[Fragment]
    strategy: str
    elapsed: float
    stopped: str | None  # None: finished; "max-time", "interrupted", ...
    excluded: int = 0
    too_deep: int = 0
    over_limit: int = 0
    requests: int = 0
    extra: dict = field(default_factory=dict)  # more summary fields (e.g. a fetcher's)

    @property
    def pages(self) -> list[Link]:
        """The in-scope URLs that were requested."""
        return [lk for lk in self.links if lk.kind == "page" and lk.requested]

    def page_urls(self) -> set[str]:
        return {lk.url for lk in self.pages}

    @property
    def bytes(self) -> int:
        return sum(lk.size for lk in self.links)

    @property
    def redirects(self) -> int:
        return sum(
            1 for lk in self.links if lk.redirect or (lk.final_url and lk.final_url != lk.url)
        )

    def summary(self) -> dict:
        pages = len(self.pages)
        return {
            "event": "crawled",
            "strategy": self.strategy,
            "pages": pages,
            "checked": sum(1 for lk in self.links if lk.kind == "external" and lk.requested),
            "requests": self.requests,
            "bytes": self.bytes,
            "broken": len(self.broken),
            "redirects": self.redirects,
            "robots_skipped": sum(1 for lk in self.links if lk.skipped == "robots"),
            "excluded": self.excluded,
            "too_deep": self.too_deep,
            "over_limit": self.over_limit,
            "truncated": sum(1 for lk in self.links if lk.truncated),
            "elapsed": round(self.elapsed, 3),
            "pages_per_s": round(pages / self.elapsed, 1) if self.elapsed > 0 else 0.0,
            "stopped": self.stopped,
            **self.extra,
        }


class Crawler:
    """A crawl of ``seeds``; ``run()`` returns a ``CrawlResult``.

    ``client`` (an ``HttpClient``) is made from ``timeout``/``max_body``/
    ``user_agent``/``per_host`` when not given, and closed at the end.
    ``fetcher`` replaces the client altogether: requests and parsing go
    through it (the distributed crawl's workers); its owner closes it.
    ``stop()`` (e.g. from a signal handler) ends the crawl politely: no new
    requests; requests in flight get ``grace`` seconds, then are cut.
    """

    def __init__(
        self,
        seeds: Iterable[str],
        *,
        strategy: str = "recursive",
        scope: str = "host",
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        depth: int | None = None,
        max_pages: int | None = None,
        max_time: float | None = None,
        concurrency: int = 64,
        per_host: int = 8,
        delay: float = 0.0,
        robots: bool = True,
        retries: int = 2,
        sitemap: bool = False,
        check_links: bool = False,
        check_fragments: bool = False,
        timeout: float = 30.0,
        max_body: int = 10 * 2**20,
        user_agent: str | None = None,
        client: HttpClient | None = None,
        fetcher: Fetcher | None = None,
        grace: float = 2.0,
        backoff: float = 0.5,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r} (use {' or '.join(STRATEGIES)})")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.seeds: list[URL] = []
        for raw in seeds:
            found = normalize(raw)
            if found is None:
                raise ValueError(f"not an http(s) URL: {raw!r}")
            self.seeds.append(found[0])
        if not self.seeds:
            raise ValueError("no URL to crawl")
        self.strategy = strategy
        self.scope = Scope(self.seeds, scope, include, exclude)
        self.depth = depth
        self.max_pages = max_pages
        self.max_time = max_time
        self.concurrency = concurrency
        self.use_robots = robots
        self.sitemap = sitemap
        self.check_links = check_links
        self.check_fragments = check_fragments
        self.max_body = max_body
        self.retry = RetryPolicy(retries, backoff)
        self.gates = HostGates(per_host, delay)
        self._own_fetcher = fetcher is None and client is None  # else the caller closes it
        self.fetcher = fetcher or LocalFetcher(client or crawl_client(
            timeout=timeout, max_body=max_body, per_host=per_host, user_agent=user_agent,
        ))  # fmt: skip
        self.user_agent = user_agent or "nettools"
        self.robots = RobotsCache(self._fetch_plain, self.user_agent)
        self._delays_set: set[str] = set()
        self._links: dict[str, Link] = {}
        self._too_deep: dict[str, int] = {}
        self._fragments: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._fragment_targets: set[str] = set()
        self._late: list[Link] = []
        self._excluded: set[str] = set()
        self._ignored: set[str] = set()
        self._over_limit: set[str] = set()
        self._page_count = 0
        self._halt = Halt(grace)
        self.stopped: str | None = None
        self.requests = 0
        self.done = 0  # links processed, for progress displays

    # ----------------------------------------------------------- running

    @property
    def admitted(self) -> int:
        """Links admitted so far (processed or waiting), for progress displays."""
        return len(self._links)

    def run(self) -> CrawlResult:
        """Crawl until there is nothing left (or ``stop``); returns the result."""
        start = time.monotonic()
        timer = spawn_after(self.max_time, self.stop, "max-time") if self.max_time else None
        runner = spawn(self._run)
        self._runner = runner
        try:
            runner.wait()
        finally:
            if timer is not None:
                timer.cancel()
            if self._own_fetcher:
                self.fetcher.close()
        return self._result(time.monotonic() - start)

    def stop(self, reason: str = "interrupted") -> None:
        """No new requests from now on; requests in flight are cut after ``grace``."""
        if self._halt.stopped:
            return
        self.stopped = reason
        log.info("stopping (%s): letting %d requests finish", reason, self._halt.running)
        self._halt.stop()

    def _run(self) -> None:
        seeds = []
        for url in self.seeds:
            link = self._admit(str(url), url, "", 0, None, seed=True)
            if link is not None:
                seeds.append(link)
        if self.sitemap:
            seeds.extend(self._sitemap_seeds())
        seeds.extend(self._late)
        self._late.clear()
        if self.strategy == "recursive":
            self._run_recursive(seeds)
        else:
            self._run_producer_consumer(seeds)

    def _run_recursive(self, seeds: list[Link]) -> None:
        pool = GreenPool(self.concurrency)
        overflow: deque[Link] = deque()

        def schedule(link: Link) -> None:
            if pool.free() > 0:
                pool.spawn_n(visit, link)
            else:  # every slot busy: a running visit takes it before it exits
                overflow.append(link)

        def visit(link: Link) -> None:
            while True:
                for child in self._work(link):
                    schedule(child)
                if not overflow:
                    return
                link = overflow.popleft()

        for link in seeds:
            schedule(link)
        pool.waitall()

    def _run_producer_consumer(self, seeds: list[Link]) -> None:
        frontier: Queue = Queue()

        def worker() -> None:
            while True:
                link = frontier.get()
                if link is None:
                    return
                try:
                    for child in self._work(link):
                        frontier.put(child)
                finally:
                    frontier.task_done()

        for link in seeds:
            frontier.put(link)
        workers = [spawn(worker) for _ in range(self.concurrency)]
        frontier.join()
        for _ in workers:
            frontier.put(None)
        for gt in workers:
            gt.wait()

    def _work(self, link: Link) -> list[Link]:
        """Visit ``link``; the newly admitted links it led to."""
        try:
            found = self._halt.run(self._visit, link)
        except Exception as exc:  # one bad page must not end the crawl
            log.exception("error while visiting %s", link.url)
            link.error = f"internal error: {type(exc).__name__}: {exc}"
            return []
        finally:
            self.done += 1
        if found is None:  # stopped, or cut by stop() while in flight
            if not link.requested:
                link.skipped = "stopped"
            return []
        if self._late:  # links a shorter path made reachable again
            found.extend(self._late)
            self._late.clear()
        return found

    # ---------------------------------------------------------- visiting

    def _visit(self, link: Link) -> list[Link]:
        if self._halt.stopped:
            link.skipped = "stopped"
            return []
        url = link._url
        if link.kind == "external":
            self._check(link)
            return []
        robots = self.robots.get(url) if (self.use_robots or self.sitemap) else None
        if robots is not None:
            host = host_key(url)
            if self.use_robots and host not in self._delays_set:
                self._delays_set.add(host)
                self.gates.set_delay(host, robots.crawl_delay(self.user_agent))
            if self.use_robots and not robots.allowed(url, self.user_agent):
                link.skipped = "robots"
                return []
            if self._halt.stopped:
                link.skipped = "stopped"
                return []
        resp = self._fetch(link, "GET", follow_redirects=False, links=True,
                           anchors=self.check_fragments)  # fmt: skip
        if resp is None:
            return []
        found: list[Link] = []
        location = resp.headers.get("Location") if 300 <= resp.status < 400 else None
        if location:
            target = normalize(location, url)
            if target is None:
                link.error = f"redirect to an unusable URL: {location}"
                return []
            link.redirect = str(target[0])
            self._follow(link, [(link.redirect, *target)], found, via_redirect=True)
            return found
        if resp.links is not None:  # an HTML 2xx page
            if self.check_fragments:
                link._anchors = resp.anchors
            self._follow(link, resp.links, found)
        return found

    def _check(self, link: Link) -> None:
        """One request for a link that leaves the scope: HEAD, else GET."""
        wants_anchors = link.url in self._fragment_targets
        resp = None
        if not wants_anchors:
            resp = self._fetch(link, "HEAD", follow_redirects=True, quiet=True)
        if resp is None or resp.status >= 400:
            link.error = None
            cap = self.max_body if wants_anchors else CHECK_BODY
            resp = self._fetch(link, "GET", follow_redirects=True, max_body=cap,
                               anchors=wants_anchors)  # fmt: skip
        if resp is not None and resp.anchors is not None:
            link._anchors = resp.anchors

    def _fetch(
        self, link: Link, method: str, *, follow_redirects: bool, max_body: int | None = None,
        quiet: bool = False, links: bool = False, anchors: bool = False,
    ) -> Fetched | None:
        """``method`` on ``link`` with politeness and retries; the outcome is
        recorded on ``link``.  None when no response came (``link.error`` says why)."""
        url = link._url
        host = host_key(url)
        attempt = 0
        while True:
            error: FetchError | None = None
            resp: Fetched | None = None
            with self.gates.slot(host):
                link.attempts += 1
                self.requests += 1
                try:
                    resp = self.fetcher.fetch(
                        method, url, follow_redirects=follow_redirects, max_body=max_body,
                        links=links, anchors=anchors,
                    )  # fmt: skip
                except FetchError as exc:
                    error = exc
            if resp is not None and resp.status in RETRY_STATUSES:
                wait = self.retry.backoff(attempt, retry_after(resp.headers.get("Retry-After")))
                if wait is not None and not self._halt.stopped:
                    self.gates.hold_off(host, wait)
                    attempt += 1
                    continue
            if error is not None and error.kind in TRANSIENT and not quiet:
                wait = self.retry.backoff(attempt)
                if wait is not None and not self._halt.stopped:
                    sleep(wait)
                    attempt += 1
                    continue
            link.method = method
            if error is not None:
                link.error = f"{error.kind}: {error.message}"
                return None
            assert resp is not None
            link.status = resp.status
            link.error = None
            link.content_type = resp.content_type
            link.size = resp.size
            link.truncated = resp.truncated
            link.final_url = resp.final_url
            link.elapsed = resp.elapsed
            return resp

    def _fetch_plain(self, url: URL) -> tuple[int, bytes] | None:
        """One GET (robots.txt, sitemaps), politely; None on a transport failure."""
        with self.gates.slot(host_key(url)):
            self.requests += 1
            try:
                resp = self.fetcher.fetch("GET", url, follow_redirects=True, body=True)
            except FetchError as exc:
                log.info("%s", exc)
                return None
        return resp.status, resp.body or b""

    # --------------------------------------------------------- admitting

    def _follow(
        self, page: Link, targets: list[tuple[str, URL, str]], found: list[Link], *,
        via_redirect: bool = False,
    ) -> None:
        """Admit what ``page`` links to (``targets``: (key, url, fragment)), or
        redirects to (``via_redirect``: one target at the page's own depth)."""
        depth = page.depth if via_redirect else page.depth + 1
        admit = self._admit
        for key, url, fragment in targets:
            link = admit(key, url, fragment, depth, page, via_redirect=via_redirect)
            if link is not None:
                found.append(link)
        if self.depth is not None:  # for _shorten
            page._children = [(key, url, via_redirect) for key, url, _ in targets]

    def _admit(
        self, key: str, url: URL, fragment: str, depth: int, referrer: Link | None, *,
        via_redirect: bool = False, seed: bool = False,
    ) -> Link | None:
        """Record a link to ``url`` (``key``: its string form); returns a new
        Link when it is to be visited."""
        if fragment and self.check_fragments and referrer is not None:
            self._fragment_targets.add(key)
            refs = self._fragments[(key, fragment)]
            if referrer.url not in refs and len(refs) < MAX_REFERRERS:
                refs.append(referrer.url)
        link = self._links.get(key)
        fresh = link is None
        if fresh:
            if key in self._excluded or key in self._ignored:
                return None
            if self.scope.excluded(url):
                self._excluded.add(key)
                return None
            if self.scope.follows(url):
                if self.depth is not None and depth > self.depth:
                    self._too_deep[key] = min(depth, self._too_deep.get(key, depth))
                    return None
                if self.max_pages is not None and self._page_count >= self.max_pages:
                    self._over_limit.add(key)
                    return None
                self._page_count += 1
                kind = "page"
            elif self.check_links:
                kind = "external"
            else:
                self._ignored.add(key)  # out of scope, unchecked: decided once
                return None
            self._too_deep.pop(key, None)
            link = self._links[key] = Link(key, kind, depth, seed=seed, _url=url)
        if referrer is not None:
            if via_redirect:
                if referrer.url not in link.redirected_from:
                    link.redirected_from.append(referrer.url)
            else:
                link.add_referrer(referrer.url)
        if seed:
            link.seed = True
        if not fresh and depth < link.depth:
            self._shorten(link, depth)
        return link if fresh else None

    def _shorten(self, link: Link, depth: int) -> None:
        """A shorter path to ``link`` was found: lower its depth and, for pages
        already parsed, their children's -- admitting those that were too deep.
        New links go on ``self._late`` for the strategy to schedule."""
        stack = [(link, depth)]
        while stack:
            node, d = stack.pop()
            if d >= node.depth:
                continue
            node.depth = d
            for key, url, via_redirect in node._children or ():
                cd = d if via_redirect else d + 1
                child = self._links.get(key)
                if child is None:
                    new = self._admit(key, url, "", cd, node, via_redirect=via_redirect)
                    if new is not None:
                        self._late.append(new)
                elif cd < child.depth:
                    stack.append((child, cd))

    # ----------------------------------------------------------- sitemaps

    def _sitemap_seeds(self) -> list[Link]:
        """The in-scope URLs listed by the seeds' sitemaps (robots.txt's, else /sitemap.xml)."""
        queue: deque[str] = deque()
        for site in {origin(u) for u in self.seeds}:
            robots = self.robots.get(URL(site))
            queue.extend(robots.sitemaps or [site + "/sitemap.xml"])
        seen: set[str] = set()
        found: list[Link] = []
        while queue and len(seen) < MAX_SITEMAPS and not self._halt.stopped:
            where = queue.popleft()
            target = normalize(where)
            if target is None or str(target[0]) in seen:
                continue
            seen.add(str(target[0]))
            answer = self._fetch_plain(target[0])
            if answer is None or answer[0] >= 400:
                log.info("sitemap %s: %s", where, "unreachable" if answer is None else answer[0])
                continue
            pages, nested = parse_sitemap(answer[1])
            queue.extend(nested)
            for page in pages:
                url = normalize(page)
                if url is not None and self.scope.follows(url[0]):
                    link = self._admit(str(url[0]), url[0], "", 0, None, seed=True)
                    if link is not None:
                        found.append(link)
        return found

    # ------------------------------------------------------------ results

    def _result(self, elapsed: float) -> CrawlResult:
        links = sorted(self._links.values(), key=lambda lk: lk.url)
        for link in links:
            if not link.requested and link.skipped is None:
                link.skipped = "stopped"
        broken = [b for link in links if (b := self._judge(link)) is not None]
        fragments = self._judge_fragments()
        broken.extend(
            Broken(f.url, "missing anchor", None, f.referrers, len(f.referrers), "fragment")
            for f in fragments
            if not f.ok
        )
        return CrawlResult(
            links=links,
            broken=broken,
            fragments=fragments,
            strategy=self.strategy,
            elapsed=elapsed,
            stopped=self.stopped,
            excluded=len(self._excluded),
            too_deep=len(self._too_deep),
            over_limit=len(self._over_limit),
            requests=self.requests,
            extra=self.fetcher.summary() or {},
        )

    def _final(self, link: Link) -> tuple[Link | None, str | None]:
        """Where a chain of page redirects from ``link`` ends: ``(link, None)``,
        or ``(None, reason)`` for a loop or an overlong chain."""
        seen = {link.url}
        hops = 0
        while link.redirect is not None:
            nxt = self._links.get(link.redirect)
            if nxt is None or not nxt.requested:
                return None, None  # left the scope unchecked, excluded or never reached
            if nxt.url in seen:
                return None, f"redirect loop: {link.url} -> {nxt.url}"
            hops += 1
            if hops > MAX_REDIRECT_CHAIN:
                return None, f"more than {MAX_REDIRECT_CHAIN} redirects"
            seen.add(nxt.url)
            link = nxt
        return link, None

    def _judge(self, link: Link) -> Broken | None:
        if link.skipped is not None:
            return None
        if not link.checked:
            return None  # only reached through a redirect: reported at its source
        if link.redirect is not None:
            final, problem = self._final(link)
            if problem is not None:
                return self._broken(link, problem, link.status)
            if final is None or final is link:
                return None
            reason = _failure(final)
            if reason is None:
                return None
            return self._broken(link, f"redirects to {final.url}: {reason}", final.status)
        reason = _failure(link)
        return None if reason is None else self._broken(link, reason, link.status)

    @staticmethod
    def _broken(link: Link, reason: str, status: int | None) -> Broken:
        return Broken(link.url, reason, status, link.referrers, link.referrer_count, link.kind)

    def _judge_fragments(self) -> list[Fragment]:
        checked = []
        for (key, fragment), refs in sorted(self._fragments.items()):
            link = self._links.get(key)
            if link is None or link.skipped is not None:
                continue
            final, _ = self._final(link)
            if final is None or final._anchors is None or fragment == "top":
                continue  # not an HTML page we parsed: nothing to check against
            checked.append(Fragment(f"{key}#{fragment}", fragment in final._anchors, refs))
        return checked


def _failure(link: Link) -> str | None:
    """Why ``link`` (not a redirect) failed, or None if it is fine."""
    if link.error is not None:
        return link.error
    if link.status is not None and link.status >= 400:
        return f"HTTP {link.status}"
    return None
