"""What counts as broken, decided once the crawl is over.

A link is broken when its request failed (after retries), answered 4xx/5xx,
or redirects into a loop, a chain longer than ``MAX_REDIRECT_CHAIN``, or a
broken page.  A ``#fragment`` link is broken when the HTML page it ends on
(after its redirects) has no such id or a[name]; ``#top`` always exists.
Links never requested (robots.txt, stopped) are neither fine nor broken, and
the hops of a redirect chain are judged as part of the link that starts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .results import Broken, CrawlResult, Fragment, Link

__all__ = ["MAX_REDIRECT_CHAIN", "UNREACHABLE", "assemble", "judge", "judge_link",
           "judge_fragments", "final_page"]

#: Failures of a start URL that mean the site cannot be reached: no address,
#: no connection, no TLS, or no answer in time.
UNREACHABLE = frozenset({"dns", "connect", "tls", "refused-address", "timeout"})
#: Links followed through a chain of page redirects before giving up.
MAX_REDIRECT_CHAIN = 10


def judge(
    links: Iterable[Link], by_url: Mapping[str, Link],
    fragment_refs: Mapping[tuple[str, str], list[str]],
) -> tuple[list[Broken], list[Fragment]]:
    """The broken among ``links`` (in their order) followed by the fragments
    found missing, and every fragment checked.  ``by_url`` is every link of the
    crawl by URL; ``fragment_refs`` the pages naming each ``(url, fragment)``."""
    broken = [b for link in links if (b := judge_link(link, by_url)) is not None]
    fragments = judge_fragments(fragment_refs, by_url)
    broken.extend(
        Broken(f.url, "missing anchor", None, f.referrers, len(f.referrers), "fragment")
        for f in fragments
        if not f.ok
    )
    return broken, fragments


def assemble(
    by_url: Mapping[str, Link], fragment_refs: Mapping[tuple[str, str], list[str]], *,
    seeds: list[str], strategy: str, elapsed: float, stopped: str | None, excluded: int,
    too_deep: int, over_limit: int, requests: int, extra: dict,
) -> CrawlResult:
    """The ``CrawlResult`` of a crawl's links (``by_url``, whichever state kept
    them): links never requested nor skipped are "stopped"; the start URLs
    (``seeds``) that could not be reached are named."""
    links = sorted(by_url.values(), key=lambda lk: lk.url)
    for link in links:
        if not link.requested and link.skipped is None:
            link.skipped = "stopped"
    broken, fragments = judge(links, by_url, fragment_refs)
    unreachable = []
    for url in dict.fromkeys(seeds):
        seed = by_url.get(url)
        final, _ = final_page(seed, by_url) if seed is not None else (None, None)
        if final is not None and final.status is None and final.error_kind in UNREACHABLE:
            unreachable.append((url, final.error or ""))
    return CrawlResult(
        links=links, broken=broken, fragments=fragments, strategy=strategy, elapsed=elapsed,
        stopped=stopped, excluded=excluded, too_deep=too_deep, over_limit=over_limit,
        requests=requests, extra=extra, unreachable=unreachable, seeds=len(set(seeds)),
    )  # fmt: skip


def final_page(link: Link, by_url: Mapping[str, Link]) -> tuple[Link | None, str | None]:
    """Where a chain of page redirects from ``link`` ends: ``(link, None)``,
    or ``(None, reason)`` for a loop or an overlong chain."""
    seen = {link.url}
    hops = 0
    while link.redirect is not None:
        nxt = by_url.get(link.redirect)
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


def judge_link(link: Link, by_url: Mapping[str, Link]) -> Broken | None:
    """``link`` as a ``Broken``, or None when it is fine (or was not checked)."""
    if link.skipped is not None:
        return None
    if not link.checked:
        return None  # only reached through a redirect: reported at its source
    if link.redirect is not None:
        final, problem = final_page(link, by_url)
        if problem is not None:
            return _broken(link, problem, link.status)
        if final is None or final is link:
            return None
        reason = _failure(final)
        if reason is None:
            return None
        return _broken(link, f"redirects to {final.url}: {reason}", final.status)
    reason = _failure(link)
    return None if reason is None else _broken(link, reason, link.status)


def judge_fragments(
    fragment_refs: Mapping[tuple[str, str], list[str]], by_url: Mapping[str, Link]
) -> list[Fragment]:
    """Each ``(url, fragment)`` that could be checked (its page was parsed), in order."""
    checked = []
    for (key, fragment), refs in sorted(fragment_refs.items()):
        link = by_url.get(key)
        if link is None or link.skipped is not None:
            continue
        final, _ = final_page(link, by_url)
        if final is None or final.anchors is None or fragment == "top":
            continue  # not an HTML page we parsed: nothing to check against
        checked.append(Fragment(f"{key}#{fragment}", fragment in final.anchors, refs))
    return checked


def _broken(link: Link, reason: str, status: int | None) -> Broken:
    return Broken(link.url, reason, status, link.referrers, link.referrer_count, link.kind)


def _failure(link: Link) -> str | None:
    """Why ``link`` (not a redirect) failed, or None if it is fine."""
    if link.error is not None:
        return link.error
    if link.status is not None and link.status >= 400:
        return f"HTTP {link.status}"
    return None
