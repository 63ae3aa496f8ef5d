"""A generated web site for the crawler tests, served by nettools' WSGI server
on its own hub in a background thread; the site records what it is asked for.

``Site(pages=N)`` serves:

* ``/`` linking to everything below, and ``/p/0.html`` .. ``/p/{N-1}.html``, a
  binary tree (page i links to 2i+1 and 2i+2, to its parent and home), each
  child spelled differently (absolute with an upper-case scheme and host,
  relative, ``./x#top``, percent-encoded ``/%70/...``) so only a normalising
  crawler fetches each page once (``plain_links=True``: relative links only);
  every 250th page links to a missing page;
* ``/private/...`` (disallowed by robots.txt), ``/old`` (301 to ``/p/5.html``),
  ``/loop/a`` <-> ``/loop/b`` (a redirect loop), ``/error`` (500),
  ``/busy`` (429 with Retry-After the first time), ``/slow.html``,
  ``/huge.html`` (a link at each end of ``huge`` bytes), ``/file.pdf`` and
  ``/data.json`` (with link-like text that must not be followed),
  ``/frag.html`` (ids ``sec1`` and ``a[name=n2]``), ``/based/index.html``
  (``<base href="/p/">``), ``/orphan.html`` (only in the sitemap),
  ``/robots.txt`` and ``/sitemap.xml``.

``External()`` is a second host with ``/ok.html``, ``/gone.html`` (404) and
``/nohead.html`` (405 to HEAD).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, defaultdict

import nettools
from helpers.wsgi import ServerThread
from nettools.tools.crawl.results import MAX_REFERRERS

MISSING_EVERY = 250
#: Seconds a held request waits for ``Recorder.release`` at most.
HOLD_LIMIT = 30.0


def _page(body: str, title: str = "page") -> bytes:
    head = f"<!doctype html><html><head><title>{title}</title></head>"
    return f"{head}<body>{body}</body></html>".encode()


class Recorder:
    """Counts requests per (method, path) and concurrent requests per Host;
    ``started[path]`` and ``answered[path]`` are the server's own clock
    (``time.monotonic``) when each request arrived and when its answer was
    handed back (the client cannot have it any sooner)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.counts: Counter = Counter()
            self.inflight: Counter = Counter()
            self.max_inflight: Counter = Counter()
            self.started: dict[str, list[float]] = defaultdict(list)
            self.answered: dict[str, list[float]] = defaultdict(list)
            self.total = 0
            self.agents: set[str] = set()
        self.reached = threading.Event()
        self.reach_at: int | None = None
        # Requests after the first ``hold_from`` wait for ``release`` (up to HOLD_LIMIT).
        self.hold_from: int | None = None
        self.release = threading.Event()
        # The first request for ``hold_path`` waits for ``release`` too; ``held`` is set
        # when it arrives, and ``held_agent`` is the User-Agent that asked.
        self.hold_path: str | None = None
        self.held = threading.Event()
        self.held_agent = ""

    def enter(self, environ: dict) -> str:
        host = environ.get("HTTP_HOST", "")
        path = environ.get("PATH_INFO", "")
        with self.lock:
            self.counts[(environ["REQUEST_METHOD"], path)] += 1
            self.inflight[host] += 1
            self.max_inflight[host] = max(self.max_inflight[host], self.inflight[host])
            self.started[path].append(time.monotonic())
            self.total += 1
            self.agents.add(environ.get("HTTP_USER_AGENT", ""))
            if self.reach_at is not None and self.total >= self.reach_at:
                self.reached.set()
            held = self.hold_from is not None and self.total > self.hold_from
            if path == self.hold_path and not self.held.is_set():
                self.held_agent = environ.get("HTTP_USER_AGENT", "")
                self.held.set()
                held = True
        if held:  # a green wait: the server's other requests go on
            for _ in range(int(HOLD_LIMIT / 0.01)):
                if self.release.is_set():
                    break
                nettools.sleep(0.01)
        return host

    def leave(self, host: str, path: str) -> None:
        with self.lock:
            self.inflight[host] -= 1
            self.answered[path].append(time.monotonic())

    def wait_for(self, path: str, limit: float = 10.0) -> None:
        """Hold this request (a green sleep: other requests go on) until ``path``
        has been requested, for at most ``limit`` seconds."""
        for _ in range(int(limit / 0.005)):
            if path in self.started:
                return
            nettools.sleep(0.005)

    def paths(self, method: str = "GET") -> set[str]:
        return {p for (m, p) in self.counts if m == method}

    def fetched_twice(self, exempt: set[str] = frozenset()) -> dict:
        return {k: n for k, n in self.counts.items() if n > 1 and k[1] not in exempt}


class Site(Recorder):
    """The generated site as a WSGI application."""

    def __init__(
        self,
        pages: int = 2000,
        *,
        crawl_delay: float | None = None,
        retry_after: int = 1,
        slow: float = 0.2,
        huge: int = 200_000,
        page_sleep: float = 0.002,
        external: str | None = None,
        plain_links: bool = False,
    ) -> None:
        super().__init__()
        self.pages = pages
        self.crawl_delay = crawl_delay
        self.retry_after = retry_after
        self.slow = slow
        self.huge = huge
        self.page_sleep = page_sleep
        self.external = external
        self.plain_links = plain_links  # one spelling per link (for naive crawlers)
        self.busy_refused = 0

    # --- what a complete crawl of the site must find
    def expected_pages(self, base: str) -> set[str]:
        """Every in-scope URL a full crawl requests (without --sitemap)."""
        paths = {"/", "/old", "/loop/a", "/loop/b", "/error", "/busy", "/slow.html",
                 "/huge.html", "/huge-early.html", "/file.pdf", "/data.json", "/frag.html",
                 "/based/index.html", "/missing.html"}  # fmt: skip
        paths |= {f"/p/{i}.html" for i in range(self.pages)}
        paths |= {f"/missing/{i}.html" for i in range(0, self.pages, MISSING_EVERY)}
        return {base + p for p in paths}

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        host = self.enter(environ)
        try:
            status, headers, body = self.respond(environ, host)
        finally:
            self.leave(host, environ.get("PATH_INFO", ""))
        start_response(status, headers)
        return [body]

    def respond(self, environ: dict, host: str) -> tuple[str, list, bytes]:
        path = environ["PATH_INFO"]
        base = f"http://{host}"
        html = [("Content-Type", "text/html; charset=utf-8")]
        if self.page_sleep:
            nettools.sleep(self.page_sleep)  # so concurrent requests overlap
        if path == "/robots.txt":
            text = "User-agent: *\nDisallow: /private/\n"
            if self.crawl_delay:
                text += f"Crawl-delay: {self.crawl_delay}\n"
            text += f"Sitemap: {base}/sitemap.xml\n"
            return "200 OK", [("Content-Type", "text/plain")], text.encode()
        if path == "/sitemap.xml":
            urls = "".join(f"<url><loc>{base}{p}</loc></url>" for p in ("/", "/orphan.html"))
            xml = ('<?xml version="1.0" encoding="UTF-8"?>'
                   f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>')
            return "200 OK", [("Content-Type", "application/xml")], xml.encode()
        if path == "/":
            return "200 OK", html, _page(self.home(base), "home")
        if path.startswith("/p/") and path.endswith(".html"):
            num = path[3:-5]
            if num.isdigit() and int(num) < self.pages:
                return "200 OK", html, _page(self.tree_page(int(num), host))
        if path == "/old":
            return "301 Moved Permanently", [("Location", "/p/5.html")], b""
        if path == "/loop/a":
            return "302 Found", [("Location", f"{base}/loop/b")], b""
        if path == "/loop/b":
            return "302 Found", [("Location", "/loop/a")], b""
        if path == "/error":
            return "500 Internal Server Error", html, _page("oops")
        if path == "/busy":
            with self.lock:
                first = self.counts[("GET", "/busy")] == 1
            if first:
                self.busy_refused += 1
                headers = [("Retry-After", str(self.retry_after)), ("Content-Type", "text/plain")]
                return "429 Too Many Requests", headers, b"slow down"
            return "200 OK", html, _page("not busy any more")
        if path == "/slow.html":
            nettools.sleep(self.slow)
            return "200 OK", html, _page("slow")
        if path == "/huge.html":
            filler = "<p>" + "x" * 1000 + "</p>"
            body = ('<a href="/huge-early.html">early</a>' + filler * (self.huge // len(filler))
                    + '<a href="/huge-late.html">late</a>')  # fmt: skip
            return "200 OK", html, _page(body)
        if path in ("/huge-early.html", "/huge-late.html", "/orphan.html", "/private/secret.html"):
            return "200 OK", html, _page(path)
        if path == "/file.pdf":
            return "200 OK", [("Content-Type", "application/pdf")], (
                b'%PDF-1.4 <a href="/never-from-pdf.html">x</a>'
            )
        if path == "/data.json":
            return "200 OK", [("Content-Type", "application/json")], (
                b'{"html": "<a href=\\"/never-from-json.html\\">x</a>"}'
            )
        if path == "/frag.html":
            return "200 OK", html, _page('<h2 id="sec1">One</h2><a name="n2">Two</a>')
        if path == "/based/index.html":
            return "200 OK", html, _page(
                '<a href="1.html">one</a>', "based"
            ).replace(b"<head>", b'<head><base href="/p/">')
        return "404 Not Found", html, _page("not found")

    def home(self, base: str) -> str:
        links = ["/p/0.html", "/private/secret.html", "/private/", "/old", "/loop/a",
                 "/missing.html", "/error", "/busy", "/slow.html", "/huge.html", "/file.pdf",
                 "/data.json", "/frag.html", "/frag.html#sec1", "/frag.html#n2",
                 "/frag.html#nope", "/based/index.html", "mailto:someone@example.org",
                 "javascript:void(0)", "#top"]  # fmt: skip
        body = "".join(f'<a href="{u}">{u}</a>' for u in links)
        body += '<img src="/p/1.html" srcset="/p/2.html 1x, /p/3.html 2x">'
        if self.external:
            body += "".join(
                f'<a href="{self.external}{p}">ext</a>'
                for p in ("/ok.html", "/gone.html", "/nohead.html", "/ok.html#x")
            )
        return body

    def tree_page(self, i: int, host: str) -> str:
        spellings = (
            lambda c: f"HTTP://{host.upper()}/p/{c}.html",
            lambda c: f"{c}.html",
            lambda c: f"./{c}.html#top",
            lambda c: f"/%70/{c}.html",
        )
        links = ['<a id="top" href="/">home</a>']
        if i:
            links.append(f'<a href="/p/{(i - 1) // 2}.html">up</a>')
        for n, child in enumerate((2 * i + 1, 2 * i + 2)):
            if child < self.pages:
                spell = spellings[1 if self.plain_links else (i + n) % len(spellings)]
                links.append(f'<a href="{spell(child)}">{child}</a>')
        if i % MISSING_EVERY == 0:
            links.append(f'<a href="/missing/{i}.html">gone</a>')
        return "".join(links)


class External(Recorder):
    """A second host for --check-links: /ok.html, /gone.html (404), /nohead.html (405 to HEAD)."""

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        host = self.enter(environ)
        try:
            path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
            html = [("Content-Type", "text/html")]
            if path == "/ok.html":
                start_response("200 OK", html)
                return [_page('<p id="x">ok</p>')]
            if path == "/nohead.html":
                if method == "HEAD":
                    start_response("405 Method Not Allowed", html)
                    return [b""]
                start_response("200 OK", html)
                return [_page("get only")]
            start_response("404 Not Found", html)
            return [_page("gone")]
        finally:
            self.leave(host, environ.get("PATH_INFO", ""))


def closed_port() -> socket.socket:
    """A port bound but not listening: it refuses connections, and nobody else can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def via_closed_proxy(port: int) -> dict:
    """The environment that routes every host but 127.0.0.1 to a closed port."""
    proxy = f"http://127.0.0.1:{port}"
    return {"http_proxy": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy,
            "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}  # fmt: skip


def serve(app) -> ServerThread:
    """``with serve(site) as srv: srv.url``: the app on 127.0.0.1, port 0."""
    return ServerThread(app, max_size=4096)


class Pages(Recorder):
    """A hand-made site: ``{path: (links, wait)}``; ``wait`` is seconds to wait
    before answering, or a path whose request the answer waits for."""

    def __init__(self, pages: dict[str, tuple[list[str], float | str]]) -> None:
        super().__init__()
        self.pages = pages

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        host = self.enter(environ)
        try:
            page = self.pages.get(environ["PATH_INFO"])
            if page is None:
                start_response("404 Not Found", [("Content-Type", "text/html")])
                return [_page("not found")]
            links, wait = page
            if isinstance(wait, str):
                self.wait_for(wait)
            elif wait:
                nettools.sleep(wait)
            start_response("200 OK", [("Content-Type", "text/html")])
            return [_page("".join(f'<a href="{u}">{u}</a>' for u in links))]
        finally:
            self.leave(host, environ.get("PATH_INFO", ""))


#: Float rounding over a chain of additions; load can only add time, never take it away.
ROUNDING = 1e-6


def assert_spaced(site: Recorder, delay: float, *, unspaced: int = 1) -> None:
    """The crawler started each request to the host at least ``delay`` after the
    one before, judged only by the server's own clock and only in the direction
    load cannot fake.  Load may delay any request, so gaps between arrivals
    prove nothing (a late request n shortens the gap to n+1); but nothing can
    make a request arrive before it was sent.  The first page request was sent
    after the crawler had read robots.txt (it waits for the rules), which the
    server answered at ``t0``; the n page requests then start at least
    ``delay`` apart, so the last one cannot arrive before ``t0 + (n-1) * delay``.
    Without the spacing the whole site arrives within a small part of that.
    ``unspaced``: the page requests that may go out before the spacing is
    known (1: the first; a shared crawl leases its first link before anyone
    has read robots.txt, so 2)."""
    t0 = site.answered["/robots.txt"][0]
    starts = page_starts(site)
    assert len(starts) >= 10
    assert min(starts) > t0
    assert max(starts) >= t0 + (len(starts) - unspaced) * delay - ROUNDING


def page_starts(site: Recorder) -> list[float]:
    """When each request but those for robots.txt arrived (the server's clock)."""
    return [t for path, ts in site.started.items() if path != "/robots.txt" for t in ts]


def comparable(doc: dict) -> dict:
    """What a json report (parsed) says about each link, leaving out timings and
    attempts, to compare two crawls of one site.  Past MAX_REFERRERS, which
    referrers are kept depends on the order pages were visited in, in any
    crawl: then only their count is compared."""
    rows = {}
    for row in doc["links"]:
        refs = row.get("referrers") or []
        kept = sorted(refs) if len(refs) < MAX_REFERRERS else len(refs)
        rows[row["url"]] = (row["ok"], row["reason"], row.get("status"), row.get("depth"),
                            row.get("kind"), kept, row.get("referrer_count"))  # fmt: skip
    broken = sorted((b["url"], b["reason"], b["referrer_count"]) for b in doc["broken"])
    summary = {k: doc["summary"][k] for k in ("pages", "checked", "broken", "redirects",
                                              "robots_skipped", "scheme_skipped", "truncated")}
    return {"rows": rows, "broken": broken, "summary": summary}
