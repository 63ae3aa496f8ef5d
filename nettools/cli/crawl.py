"""``nettools crawl``: crawl a site and check its links, for people and for CI."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import typer

from ..tools.crawl import SCOPES, STRATEGIES, CrawlResult, Progress
from ..tools.crawl.distributed import (
    MAX_MESSAGE,
    Coordinator,
    CrawlWorker,
    EndpointError,
    bind_endpoint,
    connect_endpoint,
    default_name,
)
from ..tools.crawl.links import keep_parser_memory
from ..tools.crawl.metrics import crawl_run_metrics
from ..tools.crawl.report import FORMATS, summary_line, write_report
from ..tools.crawl.state import StateSpec, parse_state
from ..tools.crawl.state.session import CrawlSession
from .clientopts import METRICS_FILE, write_metrics_file
from .common import EXIT_USAGE, duration, fail, opt, runtime_errors, size

EXIT_BROKEN = 2


def _choice(name: str, allowed: tuple[str, ...]) -> Any:
    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(allowed)}")
        return value

    check.__name__ = name
    return check


def crawl(
    urls: list[str] = typer.Argument(None, metavar="[URL]...",
                                     help="Where to start (http/https); without one, the crawl "
                                     "that --state holds goes on, with its own settings."),
    strategy: str = opt("recursive", "--strategy", callback=_choice("strategy", STRATEGIES),
                        metavar="|".join(STRATEGIES),
                        help="recursive (each page spawns its links' fetches into one pool) or "
                        "producer-consumer (a frontier queue drained by workers); "
                        "both visit the same pages."),
    scope: str = opt("host", "--scope", callback=_choice("scope", SCOPES), metavar="|".join(SCOPES),
                     help="What is crawled: host (the seeds' hosts), domain (and subdomains), "
                     "prefix (under the seed's directory) or any."),
    include: list[str] = opt([], "--include", metavar="REGEX",
                             help="Only follow links to URLs matching this regex (repeatable); "
                             "others count as leaving the site (checked with --check-links). "
                             "The start URLs are always crawled."),
    exclude: list[str] = opt([], "--exclude", metavar="REGEX",
                             help="Never request nor report URLs matching this regex "
                             "(repeatable), e.g. '^https://twitter\\.com/' or '^mailto:'."),
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
                       help="Retries after a timeout, a broken answer, a 429 or a 503 "
                       "(429/503 wait for their Retry-After).  A host that refuses "
                       "connections, has no address or fails TLS is not retried: every "
                       "link to it fails at once."),
    sitemap: bool = opt(False, "--sitemap",
                        help="Also start from the URLs of the sitemaps named in robots.txt "
                        "(else /sitemap.xml)."),
    check_links: bool = opt(False, "--check-links",
                            help="Also check links leaving the scope (one HEAD each; a GET "
                            "only when the server does not do HEAD); they are never crawled.  "
                            "Links to other schemes (mailto:, file:...) are named as skipped."),
    check_fragments: bool = opt(False, "--check-fragments",
                                help="Links to #id must find that id (or a[name]) on the page."),
    fmt: str = opt("text", "--format", "-f", callback=_choice("format", FORMATS),
                   metavar="|".join(FORMATS),
                   help="Report format: text, json, jsonl, csv or junit."),
    output: str = opt(None, "--output", "-o", metavar="FILE",
                      help="Write the report here instead of stdout."),
    timeout: Any = opt("30s", "--timeout", parser=duration,
                       help="Longest time for each request, redirects and body included, "
                       "however steadily a server drips it (connecting: at most 10s)."),
    max_body: Any = opt("10M", "--max-body", parser=size,
                        help="Read at most this much of a page; the rest is cut and reported."),
    user_agent: str = opt(None, "--user-agent", metavar="UA",
                          help="User-Agent header (default: nettools/VERSION (+project URL))."),
    distribute: str = opt(None, "--distribute", metavar="BIND_EP",
                          help="Coordinate a distributed crawl: bind this ZeroMQ endpoint "
                          "(e.g. tcp://0.0.0.0:5557; port 0 picks one) and have "
                          "'nettools crawl-worker' processes do the requests."),
    lease: Any = opt("30s", "--lease", parser=duration,
                     help="With --distribute or --state redis: a link a worker has not "
                     "answered (nor renewed) for this long goes to another worker."),
    max_message: Any = opt(str(MAX_MESSAGE), "--max-message", parser=size,
                           help="With --distribute: the largest message to or from a worker."),
    min_workers: int = opt(1, "--min-workers", min=1, metavar="N",
                           help="With --distribute: send no request before N workers joined."),
    state: str = opt(None, "--state", metavar="STATE",
                     help="Keep the crawl's state outside this process, so that it survives "
                     "it: sqlite:FILE (run the same command again after a crash and it goes "
                     "on), or redis://HOST:PORT/DB[?prefix=NAME] (also unix:///PATH?db=N): "
                     "any number of 'nettools crawl-worker --state' processes share it."),
    fresh: bool = opt(False, "--fresh",
                      help="With --state: forget what the state holds and start over."),
    report_only: bool = opt(False, "--report",
                            help="With --state: write the report of what the state holds "
                            "now, without crawling (links not visited yet are 'stopped')."),
    metrics_file: str = METRICS_FILE,
) -> None:
    """Crawl a site and check its links: broken links, redirects, missing #fragments.

    Example: nettools crawl https://docs.example.org/ --check-links --format junit -o links.xml

    Pages in scope are fetched, parsed (a[href], link[href], img/script/iframe
    src, srcset, <base href>, and the url()s and @imports of stylesheets,
    <style> elements and style attributes) and followed; other responses are
    not parsed.  With --check-links, links to schemes that are not fetched
    (mailto:, file:, ftp:...) are reported as "skipped: scheme".
    URLs are normalised so each is fetched once.  robots.txt is honoured
    (disallowed pages are skipped, Crawl-delay respected) unless
    --ignore-robots.  Redirects are recorded; loops count as broken.

    The report (--format, -o) lists each broken link with the pages that link
    to it; a JSON summary (pages, bytes, broken, redirects, elapsed, pages/s)
    goes to stderr.  A progress bar is shown when stderr is a terminal.
    SIGINT/SIGTERM stop politely and still write the report.

    With --distribute BIND_EP this process is the coordinator of a crawl that
    'nettools crawl-worker CONNECT_EP' processes (any number, on any machine,
    joining or leaving at any time) do: it keeps the frontier, robots.txt,
    politeness and the report; workers fetch and parse.  Its ready line
    {"event": "listening", "service": "crawl", "address": ENDPOINT} is the
    first line on stderr (stdout carries the report).  The summary gains a
    "workers" object (jobs per worker, jobs re-issued).  When the crawl ends
    the workers are told, and exit.

    With --state sqlite:FILE every finished visit is written to FILE as it
    happens; after a crash (Ctrl-C, kill -9, a power cut) the same command goes
    on where it stopped, fetching again only the pages that were in flight, and
    its report is the one an uninterrupted crawl would have written.
    'nettools crawl --state sqlite:FILE' (no URL) goes on with the crawl FILE
    holds; --report writes its report without crawling (also while it runs);
    --fresh starts over.

    Exit status: 0 all links fine; 2 broken links found (or a usage error);
    1 runtime error (the site cannot be reached: no start URL answered), or
    stopped by a signal before finding broken links.
    """
    with runtime_errors("crawl"):
        if max_body < 1:
            raise typer.BadParameter("--max-body must be at least 1 byte")
        spec = _state_spec(state, fresh, report_only, distribute)
        if not urls and spec is None:
            raise typer.BadParameter("give a URL to crawl (or --state holding a crawl)",
                                     param_hint="URL")  # fmt: skip
        coordinator = None
        if distribute is not None:
            coordinator = _coordinator(distribute, lease, max_message, min_workers,
                                       user_agent, timeout or 30.0, max_body, per_host)
        keep_parser_memory()  # this process is ours: the parser may keep its heap
        options = dict(
            strategy=strategy, scope=scope, include=include, exclude=exclude, depth=depth,
            max_pages=max_pages, max_time=max_time, concurrency=concurrency, per_host=per_host,
            delay=delay or 0.0, robots=not ignore_robots, retries=retries, sitemap=sitemap,
            check_links=check_links, check_fragments=check_fragments,
            timeout=timeout or 30.0, max_body=max_body, user_agent=user_agent,
            fetcher=coordinator,
        )  # fmt: skip
        try:
            session = CrawlSession.open(spec, urls or [], options, fresh=fresh,
                                        read_only=report_only, worker=default_name(),
                                        lease=lease or 30.0)  # fmt: skip
        except ValueError as exc:  # another crawl in the state, a bad URL...
            raise typer.BadParameter(str(exc), param_hint="'--state'" if spec else None) from None
        out = _open_output(output)
        if report_only:
            _write(session.report(), fmt, out)
        with session.stop_on_signals(), _progress_bar(session):
            if coordinator is not None:
                _announce(_start(coordinator))
            try:
                result = session.run()
            finally:
                if coordinator is not None:
                    coordinator.close()
        if result.site_down:
            _write_metrics(result, metrics_file, 1)
            _site_down(result, out, output)
        _write(result, fmt, out, metrics_file)


def _write(result: CrawlResult, fmt: str, out: Any, metrics_file: str | None = None) -> None:
    """The report, the summary on stderr, the --metrics-file, and the exit."""
    try:
        write_report(result, fmt, out)
    finally:
        if out is not sys.stdout:
            out.close()
    sys.stderr.write(summary_line(result) + "\n")
    sys.stderr.flush()
    code = _exit_code(result)
    _write_metrics(result, metrics_file, code)
    raise typer.Exit(code)


def _write_metrics(result: CrawlResult, metrics_file: str | None, code: int) -> None:
    if metrics_file is not None:
        write_metrics_file("crawl", crawl_run_metrics(result), metrics_file, code)


def _state_spec(state: str | None, fresh: bool, report_only: bool,
                distribute: str | None) -> StateSpec | None:
    """The parsed --state, checked against the options that go with it."""
    if state is None:
        if fresh or report_only:
            raise typer.BadParameter("needs --state", param_hint="'--fresh' / '--report'")
        return None
    if distribute is not None:
        raise typer.BadParameter("--state and --distribute do not go together",
                                 param_hint="'--state'")  # fmt: skip
    if fresh and report_only:
        raise typer.BadParameter("--fresh and --report do not go together",
                                 param_hint="'--fresh'")  # fmt: skip
    try:
        return parse_state(state)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--state'") from None


def _check_limits(wait_flag: str, wait: float | None, max_message: int) -> None:
    """What the coordinator and a worker both require of their options."""
    if not wait or wait <= 0:
        raise ValueError(f"{wait_flag} must be longer than 0s")
    if max_message < 1024:
        raise ValueError("--max-message must be at least 1K")


def _coordinator(endpoint: str, lease: float | None, max_message: int, min_workers: int,
                 user_agent: str | None, timeout: float, max_body: int,
                 per_host: int) -> Coordinator:
    """The distributed crawl's coordinator (not bound yet); bad values are usage errors."""
    try:
        url = bind_endpoint(endpoint)
        _check_limits("--lease", lease, max_message)
    except ValueError as exc:  # an EndpointError, or a limit
        raise typer.BadParameter(str(exc), param_hint="'--distribute'") from None
    return Coordinator(url, lease=lease, max_message=max_message, user_agent=user_agent,
                       timeout=timeout, max_body=max_body, per_host=per_host,
                       min_workers=min_workers)  # fmt: skip


def _start(coordinator: Coordinator) -> str:
    try:
        return coordinator.start()
    except EndpointError as exc:  # e.g. a host that does not resolve
        fail("crawl", str(exc), EXIT_USAGE)
        raise  # not reached


def _announce(endpoint: str) -> None:
    """The coordinator's ready line, on stderr: stdout may carry the report."""
    line = {"event": "listening", "service": "crawl", "address": endpoint}
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()


def _site_down(result: CrawlResult, out: Any, output: str | None) -> None:
    """No start URL answered: a runtime error, not a report of broken links."""
    if out is not sys.stdout:
        out.close()
        with contextlib.suppress(OSError):
            os.unlink(output)  # opened (and emptied) by us: no report to keep
    url, reason = result.unreachable[0]
    more = len(result.unreachable) - 1
    also = f" (and {more} more start URL{'s' if more > 1 else ''})" if more else ""
    fail("crawl", f"cannot reach the site: {url}: {reason}{also}")


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
def _progress_bar(crawler: CrawlSession) -> Iterator[None]:
    """A rich progress bar on stderr, only when stderr is a terminal and not in CI
    (``CI=true``, as CI services set it)."""
    if not sys.stderr.isatty() or os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, soft_wrap=True)  # honours NO_COLOR; log lines unbroken
    bar = Progress(TextColumn("crawl"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[note]}"), console=console, auto_refresh=False,
                   transient=True)  # fmt: skip
    task = bar.add_task("crawl", total=None, note="")

    def show(progress: Progress) -> None:
        bar.update(task, completed=progress.done, total=max(progress.admitted, 1),
                   note=f"{progress.requests} requests")  # fmt: skip
        bar.refresh()

    bar.start()
    # While the bar is live rich stands in for sys.stderr and prints what is
    # written there above the bar; the log handlers still hold the real stderr,
    # so point them at rich's, or their lines would glue onto the bar.
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(sys.stderr)
    try:
        with crawler.reporting(show):
            yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)
        bar.stop()


def crawl_worker(
    endpoint: str = typer.Argument(None, metavar="[CONNECT_EP]",
                                   help="The coordinator's endpoint, e.g. tcp://crawlhost:5557 "
                                   "(or --state)."),
    state: str = opt(None, "--state", metavar="STATE",
                     help="Work on the crawl kept in Redis: redis://HOST:PORT/DB[?prefix=NAME] "
                     "or unix:///PATH?db=N (as given to 'nettools crawl --state')."),
    concurrency: int = opt(16, "--concurrency", "-c", min=1, metavar="N",
                           help="Jobs (requests) this worker does at once."),
    name: str = opt(None, "--name", metavar="NAME",
                    help="This worker's name in the crawl's summary (and, with a "
                    "coordinator, in the User-Agent it sends) (default: HOSTNAME-PID)."),
    idle_timeout: Any = opt("60s", "--idle-timeout", parser=duration,
                            help="Give up when nothing is heard from the coordinator, or Redis "
                            "cannot be reached (or holds no crawl yet), for this long (exit 1)."),
    max_message: Any = opt(str(MAX_MESSAGE), "--max-message", parser=size,
                           help="With a coordinator: the largest message to or from it."),
) -> None:
    """Do the requests of a distributed crawl: 'nettools crawl URL --state redis://...'
    (or --distribute BIND_EP).

    Example: nettools crawl-worker --state redis://redis.example:6379/0 --concurrency 32

    With --state it takes links from the crawl kept in Redis (waiting up to
    --idle-timeout for one to be started), visits them with the crawl's own
    settings and hands back what it found; per-host limits hold across all
    workers.  A link it leased goes to another worker if it dies (after the
    crawl's --lease).  It exits 0 when the crawl is done.

    With CONNECT_EP it connects to a coordinator (waiting for it if it is not
    up yet), takes up to --concurrency jobs at a time, fetches and parses them
    and sends back what it found.  Its requests carry the crawl's User-Agent
    followed by "crawl-worker/NAME".  Heartbeats keep its jobs leased to it
    while it works; if it dies they go to other workers.  A coordinator that
    restarts is joined again.

    SIGINT/SIGTERM: take no more work, finish what is in hand, leave.  A JSON
    summary goes to stderr at exit.

    Exit status: 0 the crawl is done (or stopped by a signal); 1 the
    coordinator (or Redis) was out of reach for --idle-timeout, or a runtime
    error; 2 a usage error (e.g. a bad endpoint).
    """
    with runtime_errors("crawl-worker"):
        if (endpoint is None) == (state is None):
            raise typer.BadParameter("give a coordinator's CONNECT_EP or --state, not both",
                                     param_hint="CONNECT_EP")  # fmt: skip
        if state is not None:
            _state_worker(state, concurrency, name or default_name(), idle_timeout)
        try:
            url = connect_endpoint(endpoint)
            _check_limits("--idle-timeout", idle_timeout, max_message)
        except ValueError as exc:  # an EndpointError, or a limit
            raise typer.BadParameter(str(exc), param_hint="CONNECT_EP") from None
        keep_parser_memory()
        worker = CrawlWorker(url, concurrency=concurrency, name=name or default_name(),
                             idle_timeout=idle_timeout, max_message=max_message)  # fmt: skip
        with worker.stop_on_signals():
            try:
                why = worker.run()
            except EndpointError as exc:
                fail("crawl-worker", str(exc), EXIT_USAGE)
        summary = {"event": "stopped", "service": "crawl-worker", "name": worker.name,
                   "reason": why, **worker.stats.to_dict()}  # fmt: skip
        if why == "gone":
            sys.stderr.write(f"nettools crawl-worker: no word from the coordinator at "
                             f"{url} for {idle_timeout:g}s\n")  # fmt: skip
        sys.stderr.write(json.dumps(summary) + "\n")
        sys.stderr.flush()
        raise typer.Exit(1 if why == "gone" else 0)


def _state_worker(state: str, concurrency: int, name: str, idle_timeout: float | None) -> None:
    """crawl-worker --state: this process's part in the crawl kept in Redis."""
    try:
        spec = parse_state(state)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--state'") from None
    if spec.kind != "redis":
        raise typer.BadParameter("a worker shares a crawl kept in Redis, not in SQLite",
                                 param_hint="'--state'")  # fmt: skip
    keep_parser_memory()
    session = CrawlSession.join(spec, worker=name, concurrency=concurrency,
                                patience=idle_timeout or 60.0)  # fmt: skip
    with session.stop_on_signals():
        why = session.work()
    summary = {"event": "stopped", "service": "crawl-worker", "name": name, "reason": why,
               "jobs": session.visited}  # fmt: skip
    sys.stderr.write(json.dumps(summary) + "\n")
    sys.stderr.flush()
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    app.command("crawl")(crawl)
    app.command("crawl-worker")(crawl_worker)
