"""The crawl engine: one set of rules, two ways to schedule the work.

    from nettools.tools.crawl import Crawler

    result = Crawler(["https://docs.example/"], check_links=True).run()
    for broken in result.broken:
        print(broken.url, broken.reason, broken.referrers)

``Crawler`` visits links: it decides what to request for each (robots.txt,
then a GET of a page or a check of a link leaving the scope) and what to
make of the answer.  The rest each have a module of their own:

* ``admission``: which URLs are visited -- each once, normalised, within the
  scope, depth and page limits (depths kept minimal);
* ``requester``: how a request is made -- politeness and retries;
* ``strategies``: how newly found URLs get a greenthread -- ``recursive``
  (a pool each visit spawns into) or ``producer-consumer`` (a frontier queue
  and workers); both visit the same set of URLs;
* ``judging``: what counts as broken, once the crawl is over;
* ``results``: the ``Link``, ``Broken``, ``Fragment`` and ``CrawlResult`` it
  hands back; ``progress``: how far it has got, while it runs.

Redirects of pages are not followed by the client: a redirect is recorded on
the page and its target becomes a URL like any link (same depth, scope and
robots checks), so every hop is fetched once and loops show up in the graph.
Links that leave the scope are checked (``check_links``) with one HEAD each,
following redirects, and a GET only when the server says it does not do HEAD
(405, 501, or a broken answer to the HEAD); they are never parsed and, like a
reader following one link, do not consult robots.txt.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from yarl import URL

from ...kernel.greenthread import spawn, spawn_after
from ...web.client import FetchError, HttpClient
from ..fetch import Halt
from ..plumbing.service import stop_on_signals
from .admission import Admission
from .fetcher import Fetched, Fetcher, LocalFetcher, crawl_client
from .judging import assemble
from .politeness import HostGates, RetryPolicy
from .progress import PROGRESS_EVERY, Progress, reporting
from .requester import TRANSIENT, Requester
from .results import CrawlResult, Link
from .robots import RobotsCache, parse_sitemap
from .scope import Scope
from .state.journal import Journal
from .strategies import STRATEGIES, run_strategy
from .urls import host_key, normalize, origin

__all__ = ["Crawler"]

log = logging.getLogger("nettools.crawl")

#: Sitemaps read per crawl (sitemap indexes can nest).
MAX_SITEMAPS = 50
#: Bytes of a GET that only checks a link (its body is not used).
CHECK_BODY = 64 * 1024
#: Answers to a HEAD that say the server does not do HEAD: a GET follows.
HEAD_UNSUPPORTED = frozenset({405, 501})
#: A HEAD's broken answer is tried again as a GET, not as another HEAD.
HEAD_RETRY = TRANSIENT - {"protocol"}


class PlainStore(Protocol):
    """Keeps robots.txt and sitemaps once read (``state/journal.py``, ``state/frontier.py``)."""

    def plain(self, url: str) -> tuple[int, bytes] | FetchError | None: ...

    def store_plain(self, url: str, answer: tuple[int, bytes] | FetchError) -> None: ...


#: What a visit leads to: ``(targets, via_redirect)``, targets as ``(key, url, fragment)``.
Visited = tuple[Sequence[tuple[str, URL, str]], bool]
NOTHING: Visited = ((), False)


def head_unsupported(outcome: Fetched | FetchError) -> bool:
    """Whether a HEAD's ``outcome`` says to check the link with a GET instead."""
    if isinstance(outcome, FetchError):
        return outcome.kind == "protocol"
    return outcome.status in HEAD_UNSUPPORTED


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
        journal: Journal | None = None,
        gates: HostGates | None = None,
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
        #: What makes a crawl the same crawl (a journal or a shared state checks it).
        self.identity = {
            "seeds": [str(u) for u in self.seeds], "scope": scope, "include": list(include),
            "exclude": list(exclude), "depth": depth, "max_pages": max_pages,
            "check_links": check_links, "check_fragments": check_fragments, "robots": robots,
            "sitemap": sitemap, "max_body": max_body, "user_agent": user_agent,
        }  # fmt: skip
        #: How it fetches (a shared state hands them to every process).
        self.settings = {"per_host": per_host, "delay": delay, "retries": retries,
                         "timeout": timeout, "backoff": backoff, "grace": grace}  # fmt: skip
        self.scope = Scope(self.seeds, scope, include, exclude)
        self.admission = Admission(self.scope, depth=depth, max_pages=max_pages,
                                   check_links=check_links,
                                   check_fragments=check_fragments)  # fmt: skip
        self.max_time = max_time
        self.concurrency = concurrency
        self.use_robots = robots
        self.sitemap = sitemap
        self.check_fragments = check_fragments
        self.max_body = max_body
        self.retry = RetryPolicy(retries, backoff)
        self.gates = gates if gates is not None else HostGates(per_host, delay)
        self._own_fetcher = fetcher is None and client is None  # else the caller closes it
        self.fetcher = fetcher or LocalFetcher(client or crawl_client(
            timeout=timeout, max_body=max_body, per_host=per_host, user_agent=user_agent,
        ))  # fmt: skip
        self._halt = Halt(grace)
        self.requester = Requester(self.fetcher, self.gates, self.retry, self._halt)
        self.user_agent = user_agent or "nettools"
        #: The crawl's journal (``state/journal.py``), if it keeps one: settable before ``run``.
        self.journal = journal
        #: Where robots.txt and sitemaps read before are kept (a journal, a shared state).
        self.plain_store: PlainStore | None = journal
        self._offline = False  # report(): read only what the journal holds
        self.robots = RobotsCache(self._fetch_plain, self.user_agent)
        self._delays_set: set[str] = set()
        self.stopped: str | None = None
        self.done = 0  # links processed, for progress displays

    @classmethod
    def from_identity(cls, identity: dict, **options: Any) -> Crawler:
        """The crawl ``identity`` describes (as ``Crawler.identity`` gives it, kept
        by a journal or a shared state), run with ``options`` (concurrency,
        per_host, delay, retries, timeout, fetcher...)."""
        settings = dict(identity)
        seeds = settings.pop("seeds")
        return cls(seeds, **settings, **options)

    # ----------------------------------------------------------- running

    @property
    def admitted(self) -> int:
        """Links admitted so far (processed or waiting), for progress displays."""
        return len(self.admission.links)

    @property
    def requests(self) -> int:
        """Requests made so far, retries and robots.txt included."""
        return self.requester.requests

    def progress(self) -> Progress:
        """How far the crawl has got."""
        return Progress(self.done, len(self.admission.links), self.requester.requests)

    def reporting(
        self, show: Callable[[Progress], None], every: float = PROGRESS_EVERY
    ) -> contextlib.AbstractContextManager[None]:
        """A context in which ``show(progress)`` is called at once and every
        ``every`` seconds (from a greenthread of its own), e.g. to draw a bar."""
        return reporting(self.progress, show, every)

    def stop_on_signals(self) -> contextlib.AbstractContextManager[None]:
        """A context in which SIGINT and SIGTERM ``stop()`` the crawl politely
        (the result is still returned, with ``stopped`` "interrupted")."""
        return stop_on_signals(self.stop)

    def run(self) -> CrawlResult:
        """Crawl until there is nothing left (or ``stop``); returns the result."""
        start = time.monotonic()
        timer = spawn_after(self.max_time, self.stop, "max-time") if self.max_time else None
        runner = spawn(self._run)
        try:
            runner.wait()
        finally:
            if timer is not None:
                timer.cancel()
            if self._own_fetcher:
                self.fetcher.close()
            if self.journal is not None:
                self.journal.finish(self.requester.requests, self.stopped)
        return self._result(time.monotonic() - start)

    def report(self) -> CrawlResult:
        """The result of the visits the journal holds, without a request: the
        links not visited yet are "stopped", and so is the crawl ("unfinished")
        while some remain."""
        if self.journal is None:
            raise ValueError("only a journaled crawl has a report without crawling")
        self._offline = True
        self._run_seeds()
        self._replay()
        if any(not lk.requested and lk.skipped is None for lk in self.admission.links.values()):
            self.stopped = "unfinished"
        return self._result(0.0)

    def stop(self, reason: str = "interrupted") -> None:
        """No new requests from now on; requests in flight are cut after ``grace``."""
        if self._halt.stopped:
            return
        self.stopped = reason
        log.info("stopping (%s): letting %d requests finish", reason, self._halt.running)
        self._halt.stop()

    def _run_seeds(self) -> None:
        for url in self.seeds:
            self.admission.admit(str(url), url, "", 0, None, seed=True)
        if self.sitemap:
            for url in self.sitemap_urls():
                self.admission.admit(str(url), url, "", 0, None, seed=True)

    def _run(self) -> None:
        self._run_seeds()
        if self.journal is not None:
            self._replay()
        self.admission.late.clear()
        todo = [lk for lk in self.admission.links.values()
                if not lk.requested and lk.skipped is None]  # fmt: skip
        run_strategy(self.strategy, todo, self._work, self.concurrency)

    def _replay(self) -> None:
        """The journal's visits, as if they had just happened: their outcomes
        and what they led to, admitted in the order they were."""
        assert self.journal is not None
        links = self.admission.links
        follow = self.admission.follow
        for url, outcome, targets, via in self.journal.visits():
            link = links.get(url)
            if link is None:  # not admitted this time round: nothing to replay onto
                log.warning("the journal names %s, which this crawl did not admit", url)
                continue
            link.apply(outcome)
            if targets:
                follow(link, [(k, URL(k, encoded=True), f) for k, f in targets], [],
                       via_redirect=via)  # fmt: skip
            self.done += 1

    def visit(self, link: Link) -> Visited | None:
        """Visit ``link`` (its outcome is written on it): what it leads to, or
        None when the crawl stopped before it was done."""
        try:
            visited = self._halt.run(self._visit, link)
        except Exception as exc:  # one bad page must not end the crawl
            log.exception("error while visiting %s", link.url)
            link.error = f"internal error: {type(exc).__name__}: {exc}"
            visited = NOTHING
        finally:
            self.done += 1
        if visited is None or link.skipped == "stopped":  # stopped, or cut while in flight
            if not link.requested:
                link.skipped = "stopped"
            return None
        return visited

    def _work(self, link: Link) -> list[Link]:
        """Visit ``link``; the newly admitted links it led to."""
        visited = self.visit(link)
        if visited is None:
            return []
        targets, via_redirect = visited
        found: list[Link] = []
        if targets:
            self.admission.follow(link, targets, found, via_redirect=via_redirect)
        if self.journal is not None and not self._halt.stopped:  # else: as if in flight
            self.journal.record(link, targets, via_redirect)
        late = self.admission.late
        if late:  # links a shorter path made reachable again
            found.extend(late)
            late.clear()
        return found

    def _fetch_plain(self, url: URL) -> tuple[int, bytes] | FetchError:
        """robots.txt and sitemaps: read once per crawl, however often it is
        run and however many processes run it."""
        store = self.plain_store if self.plain_store is not None else self.journal
        if store is None:
            return self.requester.fetch_plain(url)
        answer = store.plain(str(url))
        if answer is None:
            if self._offline:
                return FetchError(str(url), "other", "not read yet")
            answer = self.requester.fetch_plain(url)
            if not self._halt.stopped:
                store.store_plain(str(url), answer)
        return answer

    # ---------------------------------------------------------- visiting

    def _visit(self, link: Link) -> Visited:
        """Visit ``link``: ``(targets, via_redirect)``, what it leads to."""
        if self._halt.stopped:
            link.skipped = "stopped"
            return NOTHING
        url = link.parsed_url
        if link.kind == "external":
            self._check(link)
            return NOTHING
        robots = self.robots.get(url) if (self.use_robots or self.sitemap) else None
        if robots is not None:
            host = host_key(url)
            if self.use_robots and host not in self._delays_set:
                self._delays_set.add(host)
                self.gates.set_delay(host, robots.crawl_delay(self.user_agent))
            if self.use_robots and not robots.allowed(url, self.user_agent):
                link.skipped = "robots"
                return NOTHING
            if self._halt.stopped:
                link.skipped = "stopped"
                return NOTHING
        resp = self.requester.fetch(link, "GET", follow_redirects=False, links=True,
                                    anchors=self.check_fragments)  # fmt: skip
        if not isinstance(resp, Fetched):
            return NOTHING
        location = resp.headers.get("Location") if 300 <= resp.status < 400 else None
        if location:
            target = normalize(location, url)
            if target is None:
                link.error = f"redirect to an unusable URL: {location}"
                return NOTHING
            link.redirect = str(target[0])
            return [(link.redirect, *target)], True
        if resp.links is not None:  # an HTML 2xx page, or a stylesheet
            if self.check_fragments:
                link.anchors = resp.anchors
            return resp.links, False
        return NOTHING

    def _check(self, link: Link) -> None:
        """One request for a link that leaves the scope: HEAD, and GET only when
        the HEAD says the server does not do HEAD (or the page's anchors are needed)."""
        wants_anchors = self.admission.wants_anchors(link)
        if not wants_anchors:
            head = self.requester.fetch(link, "HEAD", follow_redirects=True, retry=HEAD_RETRY)
            if not head_unsupported(head):
                return
            link.error = link.status = None
        cap = self.max_body if wants_anchors else CHECK_BODY
        resp = self.requester.fetch(link, "GET", follow_redirects=True, max_body=cap,
                                    anchors=wants_anchors)  # fmt: skip
        if isinstance(resp, Fetched) and resp.anchors is not None:
            link.anchors = resp.anchors

    def sitemap_urls(self) -> list[URL]:
        """The in-scope URLs listed by the seeds' sitemaps (robots.txt's, else
        /sitemap.xml), in order."""
        queue: deque[str] = deque()
        for site in sorted({origin(u) for u in self.seeds}):
            robots = self.robots.get(URL(site))
            queue.extend(robots.sitemaps or [site + "/sitemap.xml"])
        seen: set[str] = set()
        found: list[URL] = []
        while queue and len(seen) < MAX_SITEMAPS and not self._halt.stopped:
            where = queue.popleft()
            target = normalize(where)
            if target is None or str(target[0]) in seen:
                continue
            seen.add(str(target[0]))
            answer = self._fetch_plain(target[0])
            if isinstance(answer, FetchError) or answer[0] >= 400:
                log.info("sitemap %s: %s", where, answer if isinstance(answer, FetchError)
                         else answer[0])  # fmt: skip
                continue
            pages, nested = parse_sitemap(answer[1])
            queue.extend(nested)
            for page in pages:
                url = normalize(page)
                if url is not None and self.scope.follows(url[0]):
                    found.append(url[0])
        return found

    # ------------------------------------------------------------ results

    def _result(self, elapsed: float) -> CrawlResult:
        requests = self.requester.requests
        if self.journal is not None:  # the runs before this one count too
            elapsed += self.journal.previous_elapsed
            requests += self.journal.previous_requests
        admission = self.admission
        return assemble(
            admission.links, admission.fragment_refs, seeds=[str(u) for u in self.seeds],
            strategy=self.strategy, elapsed=elapsed, stopped=self.stopped,
            excluded=len(admission.excluded), too_deep=len(admission.too_deep),
            over_limit=len(admission.over_limit), requests=requests,
            extra=self.fetcher.summary() or {},
        )  # fmt: skip
