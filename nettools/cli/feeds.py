"""``nettools feeds fetch`` and ``nettools feeds serve``."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import typer

from ..tools.feeds.addresses import RULE, AddressRule
from ..tools.feeds.cache import FeedCache
from ..tools.feeds.fetcher import FeedFetcher, FeedResult, fetch_feeds, read_opml
from ..tools.feeds.service import FeedService, FeedStats
from ..tools.fetch import INTERRUPTED, Halt
from ..tools.plumbing.service import serve_on
from . import clientopts
from .common import (
    LISTEN,
    METRICS,
    READY_FILE,
    drain_timeout_option,
    duration,
    help_parts,
    opt,
    runtime_errors,
    size,
)

feeds_app = typer.Typer(
    name="feeds",
    help="Feeds (RSS, Atom): fetch them concurrently, or serve feed titles over HTTP.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

READ_TIMEOUT = clientopts.read_timeout_option("20s")
PER_HOST = clientopts.per_host_option(4)
DRAIN_TIMEOUT = drain_timeout_option("for requests to finish")
FEED_TIMEOUT = opt("20s", "--timeout", parser=duration, help="Longest time for one feed.")
# One rule for both commands (nettools.tools.feeds.addresses).
ALLOW_PRIVATE = opt(
    False, "--allow-private", help="Also fetch from private, loopback and link-local addresses."
)
PRIVATE_HELP = RULE + " The same rule holds for feeds fetch and feeds serve."

with_private_help = help_parts(private=PRIVATE_HELP)


def format_result(r: FeedResult) -> str:
    """The text form of one feed: title and link, then its newest entries."""
    if not r.ok:
        return f"!! {r.url}\n   {r.error}\n"
    flags = ", ".join(
        x for x in (r.version or "?", str(r.status), "cached" if r.cached else "") if x
    )
    lines = [f"== {r.title or '(untitled)'}{_link(r.link)}", f"   {r.url}  [{flags}]"]
    if r.moved_to:
        lines.append(f"   moved permanently to {r.moved_to}")
    if r.bozo:
        lines.append(f"   malformed: {r.bozo_error}")
    for e in r.entries:
        lines.append(f"   {e.published or '-':<20}  {e.title or '(untitled)'}{_link(e.link)}")
    return "\n".join(lines) + "\n"


def _link(link: str | None) -> str:
    """A link after a title, or nothing when there is none."""
    return f"  <{link}>" if link else ""


@feeds_app.command("fetch")
@with_private_help
def fetch_cmd(
    urls: list[str] = typer.Argument(
        None, metavar="URL", help="Feed URLs; '-' reads more, one per line, from stdin."
    ),
    opml: str = opt(None, "--opml", metavar="FILE", help="Also fetch every feed listed in FILE."),
    entries: int = opt(5, "--entries", "-n", min=0, help="Newest entries shown per feed."),
    json_out: bool = opt(False, "--json", help="One JSON object per feed instead of text."),
    cache: str = opt(
        None,
        "--cache",
        metavar="PATH",
        help="SQLite file keeping ETag/Last-Modified per feed: a 304 is "
        "answered from it, a 410 is remembered.",
    ),
    concurrency: int = opt(16, "--concurrency", "-c", min=1, help="Feeds fetched at once."),
    per_host: int = PER_HOST,
    timeout: Any = FEED_TIMEOUT,
    deadline: Any = opt(
        "2m",
        "--deadline",
        parser=duration,
        help="Longest time for all feeds; unfinished ones are reported.",
    ),
    connect_timeout: Any = clientopts.CONNECT_TIMEOUT,
    read_timeout: Any = READ_TIMEOUT,
    max_feed: Any = opt("10M", "--max-feed", parser=size, help="Largest feed accepted."),
    user_agent: str = opt(None, "--user-agent", metavar="TEXT", help="User-Agent header."),
    allow_private: bool = ALLOW_PRIVATE,
    insecure: bool = clientopts.INSECURE,
    ca_file: str = clientopts.CA_FILE,
) -> None:
    """Fetch feeds concurrently and show their titles and newest entries.

    Example: nettools feeds fetch --entries 3 https://blog.python.org/feeds/posts/default

    Each feed gets its own result (or error), in input order: one bad feed
    never hides the others.  With --cache, requests are conditional and a
    "304 Not Modified" is answered from the cache; a feed answering "410 Gone"
    is remembered and not asked again; a permanent redirect is reported with
    the new URL.  Exit status: 0 if every feed was read, 2 if any failed, 1 on
    a runtime error.

    {private}

    SIGINT/SIGTERM stop politely: no new fetches, those in flight get 2s,
    then every feed read so far is shown, in input order, and the others say
    "interrupted: not fetched" (kind "interrupted" with --json).  The summary
    says "interrupted"; the exit status is 2 if a feed had failed, else 1.
    """
    with runtime_errors("feeds fetch"):
        targets = clientopts.collect_urls(urls or [])
        if opml is not None:
            try:
                targets.extend(read_opml(opml))
            except OSError as exc:
                raise typer.BadParameter(f"{exc.strerror}: {opml}", param_hint="--opml") from None
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--opml") from None
        if not targets:
            raise typer.BadParameter("give feed URLs, '-' or --opml FILE", param_hint="URL")
        rule = AddressRule(allow_private)
        client = clientopts.client_from_options(
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_body=max_feed,
            max_redirects=10, per_host=per_host, user_agent=user_agent, insecure=insecure,
            ca_file=ca_file, allow_address=rule.allow_address,
        )  # fmt: skip
        start = time.monotonic()
        halt = Halt()
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            stack.enter_context(clientopts.stop_on_signals(halt.stop))
            store = stack.enter_context(FeedCache(cache)) if cache else None
            fetcher = FeedFetcher(client, cache=store, timeout=timeout, max_feed=max_feed,
                                  entries=entries, redirect_check=rule.redirect_check)  # fmt: skip
            results = fetch_feeds(targets, fetcher, concurrency=concurrency, deadline=deadline,
                                  halt=halt)  # fmt: skip
        for r in results:
            sys.stdout.write(r.to_json() + "\n" if json_out else format_result(r) + "\n")
        sys.stdout.flush()
        clientopts.finish(
            "feeds fetch", "feeds", total=len(results), ok=sum(r.ok for r in results),
            unfetched=sum(r.kind == INTERRUPTED for r in results), halt=halt, start=start,
            cached=sum(r.cached for r in results),
        )  # fmt: skip


@feeds_app.command("serve")
@with_private_help
def serve_cmd(
    listen: Any = LISTEN,
    concurrency: int = opt(
        64, "--concurrency", "-c", min=1, help="Feed fetches in flight at once, across all clients."
    ),
    max_urls: int = opt(100, "--max-urls", min=1, help="Most URLs in one request."),
    max_request: Any = opt("64K", "--max-request", parser=size, help="Largest request body."),
    max_feed: Any = opt("2M", "--max-feed", parser=size, help="Largest feed fetched."),
    timeout: Any = FEED_TIMEOUT,
    deadline: Any = opt(
        "60s",
        "--deadline",
        parser=duration,
        help="Longest time for one request's feeds; unfinished ones are errors.",
    ),
    allow_private: bool = ALLOW_PRIVATE,
    cache: str = opt(
        None,
        "--cache",
        metavar="PATH",
        help="SQLite file for conditional GETs (ETag/Last-Modified).",
    ),
    per_host: int = opt(4, "--per-host", min=1, help="Connections to one feed host at once."),
    max_conns: int = opt(1000, "--max-conns", min=1, help="Most clients served at once."),
    drain_timeout: Any = DRAIN_TIMEOUT,
    ready_file: str = READY_FILE,
    metrics: Any = METRICS,
) -> None:
    """Serve feed titles: POST / with feed URLs (one per line) returns their titles.

    Example: nettools feeds serve --listen 127.0.0.1:8090

    Answers in the order posted: text lines, or a JSON list (url, title, link,
    status, error) with "Accept: application/json".  GET / shows usage.  One
    pool of --concurrency fetches is shared by all clients.

    {private}
    """
    with runtime_errors("feeds serve"):
        if max_request < 1:
            raise typer.BadParameter("must be at least 1 byte", param_hint="--max-request")
        stats = FeedStats()
        app = FeedService.open(
            concurrency=concurrency, max_urls=max_urls, max_request=max_request,
            max_feed=max_feed, timeout=timeout, deadline=deadline, allow_private=allow_private,
            cache=cache, per_host=per_host, stats=stats,
        )  # fmt: skip
        raise typer.Exit(serve_on(
            "feeds", listen, lambda sock: app.start(sock, max_conns=max_conns), stats,
            max_conns=max_conns + concurrency, drain_timeout=drain_timeout, ready_file=ready_file,
            metrics=metrics, web="http",
        ))


def register(app: typer.Typer) -> None:
    app.add_typer(feeds_app, name="feeds")
