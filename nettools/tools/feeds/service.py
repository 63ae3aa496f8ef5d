"""``nettools feeds serve``: feed titles as a web service (a WSGI application).

``POST /`` with newline-separated feed URLs answers with their titles, in the
order given: one line each as text, or with ``Accept: application/json`` a
JSON list of ``{"url", "title", "link", "status", "error", "kind"}``.
``GET /`` shows a short usage page.

Every request's fetches run in ONE GreenPool shared by all clients, so the
number of outgoing fetches stays bounded however many clients post at once.

The service fetches whatever URL it is given, so by default it only connects
to public addresses, by the rule of ``feeds.addresses`` (``feeds fetch``
follows the same one); ``allow_private`` lifts that for trusted networks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...kernel.pool import GreenPool
from ...web.client import HttpClient
from ...web.wsgi import WSGIServer
from ..fetch import read_url_lines
from ..plumbing.httpmetrics import RequestMetrics
from ..plumbing.service import Stats
from .addresses import RULE, AddressRule, check_public_url, is_public_address
from .cache import FeedCache
from .fetcher import FeedFetcher, FeedResult, fetch_feeds

__all__ = ["FeedService", "FeedStats", "check_public_url", "is_public_address"]

log = logging.getLogger("nettools.feeds")

USAGE = """\
nettools feeds service

POST / with feed URLs, one per line; the answer lists their titles in the same
order, one per line (an error line starts with "error:").  Send
"Accept: application/json" for a JSON list of objects with url, title, link,
status, error and kind.

  curl --data-binary @urls.txt http://{host}/
  curl -H 'Accept: application/json' --data-binary $'https://example.org/feed\\n' http://{host}/

Limits: at most {max_urls} URLs and {max_request} bytes per request, {max_feed}
bytes per feed, {timeout} per feed, {deadline} per request.
{private}
"""


@dataclass
class FeedStats(Stats):
    """``Stats`` plus what only the feed service counts."""

    requests: int = 0
    feeds: int = 0
    feed_errors: int = 0


def _fmt_seconds(value: float | None) -> str:
    return "no limit" if value is None else f"{value:g}s"


class FeedService:
    """The WSGI application; ``fetcher``'s client decides which addresses are allowed."""

    def __init__(
        self,
        fetcher: FeedFetcher,
        *,
        concurrency: int = 64,
        max_urls: int = 100,
        max_request: int = 64 * 1024,
        deadline: float | None = 60.0,
        allow_private: bool = False,
        stats: FeedStats | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.pool = GreenPool(concurrency)
        self.max_urls = max_urls
        self.max_request = max_request
        self.deadline = deadline
        self.allow_private = allow_private
        self.stats = stats if stats is not None else FeedStats()
        self.requests = RequestMetrics(self.stats)
        self.stats.metric_sources.append(self._add_families)

    def _add_families(self, f: Any) -> None:
        stats = self.stats
        if isinstance(stats, FeedStats):
            f.counter("nettools_feeds_fetched_total", "Feeds fetched for clients.", stats.feeds)
            f.counter("nettools_feeds_failed_total", "Feeds that could not be fetched or parsed.",
                      stats.feed_errors)

    @classmethod
    def open(
        cls,
        *,
        concurrency: int = 64,
        max_urls: int = 100,
        max_request: int = 64 * 1024,
        max_feed: int = 2 * 1024 * 1024,
        timeout: float | None = 20.0,
        deadline: float | None = 60.0,
        allow_private: bool = False,
        cache: str | None = None,
        per_host: int = 4,
        stats: FeedStats | None = None,
    ) -> FeedService:
        """The service with its own HTTP client (public addresses only unless
        ``allow_private``; each feed at most ``max_feed`` bytes and ``timeout``
        seconds) and, with ``cache`` (an SQLite file), conditional GETs."""
        if max_request < 1:
            raise ValueError("max_request must be at least 1 byte")
        rule = AddressRule(allow_private)
        client = HttpClient(
            connect_timeout=10.0, read_timeout=timeout, max_body=max_feed, max_redirects=5,
            per_host=per_host, allow_address=rule.allow_address,
        )  # fmt: skip
        fetcher = FeedFetcher(
            client, cache=FeedCache(cache) if cache else None, timeout=timeout,
            max_feed=max_feed, entries=0, redirect_check=rule.redirect_check,
        )  # fmt: skip
        return cls(fetcher, concurrency=concurrency, max_urls=max_urls,
                   max_request=max_request, deadline=deadline, allow_private=allow_private,
                   stats=stats)  # fmt: skip

    def start(self, sock: Any, *, max_conns: int = 1000) -> Callable[[float | None], None]:
        """Serve on ``sock``; returns the stop function, which lets requests in
        flight finish for up to its timeout, then closes the fetcher's client and
        cache."""
        server = WSGIServer(sock, self, max_size=max_conns, max_body_size=self.max_request,
                            log_output=False, on_request=self.requests.hook,
                            name="feeds").start()  # fmt: skip

        def stop(timeout: float | None) -> None:
            server.stop(timeout)
            self.fetcher.client.close()
            if self.fetcher.cache is not None:
                self.fetcher.cache.close()

        return stop

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        self.stats.requests += 1
        method = environ["REQUEST_METHOD"]
        if environ.get("PATH_INFO", "/") not in ("", "/"):
            return _reply(start_response, "404 Not Found", "not found; see GET /\n")
        if method in ("GET", "HEAD"):
            return _reply(start_response, "200 OK", self.usage(environ))
        if method != "POST":
            return _reply(start_response, "405 Method Not Allowed", "use GET or POST\n",
                          [("Allow", "GET, HEAD, POST")])  # fmt: skip
        urls, problem = self._read_urls(environ)
        if problem is not None:
            status, message = problem
            return _reply(start_response, status, message + "\n")
        results = fetch_feeds(urls, self.fetcher, pool=self.pool, deadline=self.deadline)
        self.stats.feeds += len(results)
        self.stats.feed_errors += sum(not r.ok for r in results)
        if "application/json" in environ.get("HTTP_ACCEPT", ""):
            body = json.dumps([_summary(r) for r in results], indent=None) + "\n"
            return _reply(start_response, "200 OK", body, content_type="application/json")
        lines = [(r.title or "(untitled)") if r.ok else f"error: {r.error}" for r in results]
        return _reply(start_response, "200 OK", "".join(line + "\n" for line in lines))

    def _read_urls(self, environ: dict) -> tuple[list[str], tuple[str, str] | None]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return [], ("400 Bad Request", "bad Content-Length")
        if length > self.max_request:
            return [], ("413 Content Too Large", f"at most {self.max_request} bytes per request")
        data = environ["wsgi.input"].read(self.max_request + 1)
        if len(data) > self.max_request:
            return [], ("413 Content Too Large", f"at most {self.max_request} bytes per request")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return [], ("400 Bad Request", "the body must be UTF-8 text, one URL per line")
        urls = list(read_url_lines(text.splitlines()))
        if not urls:
            return [], ("400 Bad Request", "no URLs: post feed URLs, one per line")
        if len(urls) > self.max_urls:
            return [], ("413 Content Too Large", f"at most {self.max_urls} URLs per request "
                        f"(got {len(urls)})")  # fmt: skip
        return urls, None

    def usage(self, environ: dict) -> str:
        return USAGE.format(
            host=environ.get("HTTP_HOST") or "HOST:PORT",
            max_urls=self.max_urls,
            max_request=self.max_request,
            max_feed=self.fetcher.max_feed,
            timeout=_fmt_seconds(self.fetcher.timeout),
            deadline=_fmt_seconds(self.deadline),
            private="Private, loopback and link-local addresses are allowed."
            if self.allow_private
            else RULE,
        )


def _summary(r: FeedResult) -> dict[str, Any]:
    return {
        "url": r.url,
        "title": r.title,
        "link": r.link,
        "status": r.status,
        "error": r.error,
        "kind": r.kind,
    }


def _reply(
    start_response: Callable,
    status: str,
    text: str,
    extra: list[tuple[str, str]] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    body = text.encode("utf-8")
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [body]
