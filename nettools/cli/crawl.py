"""``nettools crawl``: crawl a site and check its links, for people and for CI."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

import typer

from ..greenthread import sleep, spawn
from ..hub import get_hub
from ..tools.crawl import SCOPES, STRATEGIES, Crawler, CrawlResult
from ..tools.crawl.links import keep_parser_memory
from ..tools.crawl.report import FORMATS, summary_line, write_report
from .common import duration, fail, opt, runtime_errors, size

EXIT_BROKEN = 2
#: Seconds between progress bar refreshes.
PROGRESS_EVERY = 0.2


def _choice(name: str, allowed: tuple[str, ...]) -> Any:
    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(allowed)}")
        return value

    check.__name__ = name
    return check


def crawl(
    urls: list[str] = typer.Argument(..., metavar="URL", help="Where to start (http/https)."),
    strategy: str = opt("recursive", "--strategy", callback=_choice("strategy", STRATEGIES),
                        metavar="|".join(STRATEGIES),
                        help="recursive (each page spawns its links' fetches into one pool) or "
                        "producer-consumer (a frontier queue drained by workers); "
                        "both visit the same pages."),
    scope: str = opt("host", "--scope", callback=_choice("scope", SCOPES), metavar="|".join(SCOPES),
                     help="What is crawled: host (the seeds' hosts), domain (and subdomains), "
                     "prefix (under the seed's directory) or any."),
    include: list[str] = opt([], "--include", metavar="RE",
                             help="Only crawl URLs matching this regex (repeatable); "
                             "others count as leaving the site."),
    exclude: list[str] = opt([], "--exclude", metavar="RE",
                             help="Never request URLs matching this regex (repeatable)."),
    depth: int = opt(None, "--depth", min=0, metavar="N",
                     help="Follow links at most this deep (seeds: 0)."),
    max_pages: int = opt(None, "--max-pages", min=1, metavar="N",
                     help="Crawl at most this many pages (pages robots.txt disallows count too)."),
    max_time: Any = opt(None, "--max-time", parser=duration,
                        help="Stop after this long and report what was found."),
    concurrency: int = opt(64, "--concurrency", "-c", min=1, metavar="N",
                     help="Requests in flight at once."),
    per_host: int = opt(8, "--per-host", min=1, metavar="N",
                     help="Requests in flight to one host at once."),
    delay: Any = opt("0", "--delay", parser=duration,
                     help="Time between the starts of two requests to one host "
                     "(a robots.txt Crawl-delay may make it longer)."),
    ignore_robots: bool = opt(False, "--ignore-robots", help="Do not honour robots.txt."),
    retries: int = opt(2, "--retries", min=0, metavar="N",
                       help="Retries after a timeout, a connection failure, a 429 or a 503 "
                       "(429/503 wait for their Retry-After)."),
    sitemap: bool = opt(False, "--sitemap",
                        help="Also start from the URLs of the sitemaps named in robots.txt "
                        "(else /sitemap.xml)."),
    check_links: bool = opt(False, "--check-links",
                            help="Also check links leaving the scope (one HEAD each, GET "
                            "when HEAD fails); they are never crawled."),
    check_fragments: bool = opt(False, "--check-fragments",
                                help="Links to #id must find that id (or a[name]) on the page."),
    fmt: str = opt("text", "--format", "-f", callback=_choice("format", FORMATS),
                   metavar="|".join(FORMATS),
                   help="Report format: text, json, jsonl, csv or junit."),
    output: str = opt(None, "--output", "-o", metavar="FILE",
                      help="Write the report here instead of stdout."),
    timeout: Any = opt("30s", "--timeout", parser=duration,
                       help="Connect and read timeout of each request."),
    max_body: Any = opt("10M", "--max-body", parser=size,
                        help="Read at most this much of a page; the rest is cut and reported."),
    user_agent: str = opt(None, "--user-agent", metavar="UA",
                          help="User-Agent header (default: nettools/VERSION (+project URL))."),
) -> None:
    """Crawl a site and check its links: broken links, redirects, missing #fragments.

    Example: nettools crawl https://docs.example.org/ --check-links --format junit -o links.xml

    Pages in scope are fetched, parsed (a[href], link[href], img/script/iframe
    src, srcset, <base href>) and followed; non-HTML responses are not parsed.
    URLs are normalised so each is fetched once.  robots.txt is honoured
    (disallowed pages are skipped, Crawl-delay respected) unless
    --ignore-robots.  Redirects are recorded; loops count as broken.

    The report (--format, -o) lists each broken link with the pages that link
    to it; a JSON summary (pages, bytes, broken, redirects, elapsed, pages/s)
    goes to stderr.  A progress bar is shown when stderr is a terminal.
    SIGINT/SIGTERM stop politely and still write the report.

    Exit status: 0 all links fine; 2 broken links found (or a usage error);
    1 runtime error, or stopped by a signal before finding broken links.
    """
    with runtime_errors("crawl"):
        if max_body < 1:
            raise typer.BadParameter("--max-body must be at least 1 byte")
        keep_parser_memory()  # this process is ours: the parser may keep its heap
        try:
            crawler = Crawler(
                urls, strategy=strategy, scope=scope, include=include, exclude=exclude,
                depth=depth, max_pages=max_pages, max_time=max_time, concurrency=concurrency,
                per_host=per_host, delay=delay or 0.0, robots=not ignore_robots,
                retries=retries, sitemap=sitemap, check_links=check_links,
                check_fragments=check_fragments, timeout=timeout or 30.0, max_body=max_body,
                user_agent=user_agent,
            )  # fmt: skip
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        out = _open_output(output)
        with _stop_on_signals(crawler), _progress(crawler):
            result = crawler.run()
        try:
            write_report(result, fmt, out)
        finally:
            if out is not sys.stdout:
                out.close()
        sys.stderr.write(summary_line(result) + "\n")
        sys.stderr.flush()
        raise typer.Exit(_exit_code(result))


def _exit_code(result: CrawlResult) -> int:
    if result.broken:
        return EXIT_BROKEN
    if result.stopped == "interrupted":
        sys.stderr.write("nettools crawl: interrupted: the report covers what was crawled\n")
        return 1
    return 0


def _open_output(path: str | None) -> Any:
    """The report's destination, opened before the crawl so a bad path fails fast."""
    if path is None or path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed after the report
    except OSError as exc:
        fail("crawl", f"cannot write the report: {exc.strerror or exc}: {path}")


@contextlib.contextmanager
def _stop_on_signals(crawler: Crawler) -> Iterator[None]:
    """SIGINT/SIGTERM: no new requests, in-flight ones finish or are cut, report written."""
    hub = get_hub()

    def on_signal(signum: int, frame: Any) -> None:
        hub.run_callback_threadsafe(lambda: spawn(crawler.stop))

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    hub.wake_on_signals()
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _progress(crawler: Crawler) -> Iterator[None]:
    """A rich progress bar on stderr, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)  # honours NO_COLOR
    bar = Progress(TextColumn("crawl"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[note]}"), console=console, auto_refresh=False,
                   transient=True)  # fmt: skip
    task = bar.add_task("crawl", total=None, note="")

    def tick() -> None:
        while True:
            bar.update(task, completed=crawler.done, total=max(crawler.admitted, 1),
                       note=f"{crawler.requests} requests")  # fmt: skip
            bar.refresh()
            sleep(PROGRESS_EVERY)

    bar.start()
    ticker = spawn(tick)
    try:
        yield
    finally:
        ticker.kill()
        bar.stop()


def register(app: typer.Typer) -> None:
    app.command("crawl")(crawl)
