"""The report's data, read back from a shared crawl state in Redis.

Any process, at any time, while workers go on: the links (``u``), their
outcomes (``o``), referrers (``r:B``, ``rf:B``, ``f``) and counts are scanned in
pages and judged by the same code as a crawl in memory (``judging.assemble``).
Links not visited yet are "stopped"; the crawl is "unfinished" until the
state says it is done.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

from ..judging import assemble
from ..results import Link
from ..scope import KINDS
from .frontier import SharedFrontier, fragment_of

__all__ = ["read_result", "UNFINISHED"]

#: ``stopped`` of a result read while the crawl still has links to visit.
UNFINISHED = "unfinished"


def read_result(frontier: SharedFrontier, *, seeds: list[str], stopped: str | None = None):
    """The ``CrawlResult`` of the crawl in ``frontier`` as it stands; ``stopped``
    is this process's reason to have stopped, if any."""
    meta = frontier.meta()
    urls: dict[bytes, str] = {}
    links: dict[str, Link] = {}
    for raw_url, value in frontier.scan("u"):
        url = raw_url.decode()
        ident, depth, kind = value.decode().split(",")
        urls[ident.encode()] = url
        links[url] = Link(url, KINDS[kind.lower()], int(depth), seed=kind.isupper())
    for ident, outcome in frontier.scan("o"):
        link = links.get(urls.get(ident, ""))
        if link is not None:
            link.apply(json.loads(outcome))
    for ident, value in frontier.scan_buckets("r"):
        link = links.get(urls.get(ident, ""))
        if link is not None:
            count, _, ids = value.partition(b":")
            link.referrer_count = int(count)
            link.referrers = [urls[i] for i in ids.split(b",") if i in urls]
    for ident, value in frontier.scan_buckets("rf"):
        link = links.get(urls.get(ident, ""))
        if link is not None:
            link.redirected_from = [urls[i] for i in value.split(b",") if i in urls]
    fragment_refs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for field, value in frontier.scan("f"):
        url, _, fragment = field.decode().partition("#")
        refs = [urls[i] for i in value.split(b",") if i in urls]
        fragment_refs[(url, fragment_of(fragment))] = refs
    started = float(meta.get("started") or time.time())
    done = meta.get("done")
    ended = int(done) / 1000 if done else time.time()
    reason = meta.get("stopped") or stopped or (None if done else UNFINISHED)
    extra = {"state": {
        "workers": {k.decode(): int(v) for k, v in frontier.scan("w")},
        "reissued": int(meta.get("reissued", 0)),
        "lost": int(meta.get("lost", 0)),
    }}  # fmt: skip
    return assemble(
        links, fragment_refs, seeds=seeds, strategy="shared", elapsed=max(0.0, ended - started),
        stopped=reason, excluded=frontier.members("x"), too_deep=frontier.count("td"),
        over_limit=frontier.members("ol"), requests=int(meta.get("requests", 0)), extra=extra,
    )  # fmt: skip
