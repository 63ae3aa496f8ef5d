"""Which links a crawl visits: each URL once, in scope, within depth and page limits.

A URL is admitted once, whatever order the links to it arrive in: the first
link makes its ``Link`` and later ones only add referrers.  A link to a
scheme the crawl does not fetch (``mailto:``, ``file:``...) is, with
``check_links``, recorded as skipped ("scheme") and never visited.  A URL left out is
counted once by why (excluded, too deep, over the page limit, out of scope and
unchecked).  A page first met deeper than ``depth`` is admitted later if a
shorter path to it turns up: depths are kept minimal, and the links a shorter
path makes reachable again wait on ``late`` for the strategy to schedule.
"""

from __future__ import annotations

from collections import defaultdict

from yarl import URL

from .results import MAX_REFERRERS, Link
from .scope import EXCLUDED, KINDS, PAGE, SCHEME, Scope

__all__ = ["Admission"]


class Admission:
    """The links of one crawl, and the rules that admit new ones.

    ``links`` holds every admitted link by URL; ``excluded``, ``too_deep``
    (with the depth each was met at) and ``over_limit`` the URLs left out;
    ``fragment_refs`` the pages naming each ``(url, fragment)`` and
    ``fragment_targets`` those URLs (with ``check_fragments``).
    """

    def __init__(
        self, scope: Scope, *, depth: int | None, max_pages: int | None, check_links: bool,
        check_fragments: bool,
    ) -> None:
        self.scope = scope
        self.depth = depth
        self.max_pages = max_pages
        self.check_links = check_links
        self.check_fragments = check_fragments
        self.links: dict[str, Link] = {}
        self.too_deep: dict[str, int] = {}
        self.fragment_refs: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.fragment_targets: set[str] = set()
        #: Links admitted by a shorter path to a page parsed already, to be scheduled.
        self.late: list[Link] = []
        self.excluded: set[str] = set()
        self.over_limit: set[str] = set()
        self._ignored: set[str] = set()
        self._page_count = 0

    def wants_anchors(self, link: Link) -> bool:
        """Whether a ``#fragment`` link names ``link`` (its anchors are needed)."""
        return link.url in self.fragment_targets

    def follow(
        self, page: Link, targets: list[tuple[str, URL, str]], found: list[Link], *,
        via_redirect: bool = False,
    ) -> None:
        """Admit what ``page`` links to (``targets``: (key, url, fragment)), or
        redirects to (``via_redirect``: one target at the page's own depth);
        the new links are appended to ``found``."""
        depth = page.depth if via_redirect else page.depth + 1
        admit = self.admit
        for key, url, fragment in targets:
            link = admit(key, url, fragment, depth, page, via_redirect=via_redirect)
            if link is not None:
                found.append(link)
        if self.depth is not None:  # for _shorten
            page.children = [(key, url, via_redirect) for key, url, _ in targets]

    def admit(
        self, key: str, url: URL, fragment: str, depth: int, referrer: Link | None, *,
        via_redirect: bool = False, seed: bool = False,
    ) -> Link | None:
        """Record a link to ``url`` (``key``: its string form); returns a new
        Link when it is to be visited."""
        if fragment and self.check_fragments and referrer is not None:
            self.fragment_targets.add(key)
            refs = self.fragment_refs[(key, fragment)]
            if referrer.url not in refs and len(refs) < MAX_REFERRERS:
                refs.append(referrer.url)
        link = self.links.get(key)
        fresh = link is None
        if fresh:
            if key in self.excluded or key in self._ignored:
                return None
            kind = self.scope.kind_of(key, url, self.check_links, seed=seed)
            if kind is None:
                self._ignored.add(key)  # out of scope, unchecked: decided once
                return None
            if kind == EXCLUDED:
                self.excluded.add(key)
                return None
            if kind == PAGE:
                if self.depth is not None and depth > self.depth:
                    self.too_deep[key] = min(depth, self.too_deep.get(key, depth))
                    return None
                if self.max_pages is not None and self._page_count >= self.max_pages:
                    self.over_limit.add(key)
                    return None
                self._page_count += 1
            self.too_deep.pop(key, None)
            link = self.links[key] = Link(key, KINDS[kind], depth, seed=seed, parsed_url=url)
            if kind == SCHEME:  # mailto:, file:...: named, never requested
                link.skipped = "scheme"
                fresh = False
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
        New links go on ``late`` for the strategy to schedule."""
        stack = [(link, depth)]
        while stack:
            node, d = stack.pop()
            if d >= node.depth:
                continue
            node.depth = d
            for key, url, via_redirect in node.children or ():
                cd = d if via_redirect else d + 1
                child = self.links.get(key)
                if child is None:
                    new = self.admit(key, url, "", cd, node, via_redirect=via_redirect)
                    if new is not None:
                        self.late.append(new)
                elif cd < child.depth:
                    stack.append((child, cd))
