"""The crawler's per-page shortcuts give exactly what the plain way gives.

* ``Resolver`` (normalisation remembered per context, plain paths appended
  to the site's spelling) against ``normalize`` (or ``other_scheme``) called afresh, over tricky
  links on many bases, in several orders so each answer is sometimes computed
  and sometimes remembered;
* ``extract`` (one walk over the elements, CSS read only on pages that may
  link from it) against the same rules applied to the elements a CSS query
  selects, over tricky HTML;
* ``Link.add_referrer`` (one comparison per call) against counting distinct
  referrers, in the order a crawl makes the calls.
"""

from __future__ import annotations

import random

import pytest
from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from nettools.tools.crawl.css import css_links
from nettools.tools.crawl.links import LINK_ATTRS, PageLinks, extract, srcset_urls
from nettools.tools.crawl.results import MAX_REFERRERS, Link
from nettools.tools.crawl.urls import Resolver, normalize, other_scheme

pytestmark = pytest.mark.timeout(20)

LINKS = [
    # the same page, spelled many ways
    "/p/1.html", "/p/./1.html", "/p/../p/1.html", "/%70/1.html", "/P/1.html", "/p//1.html",
    "p/1.html", "./p/1.html", "../p/1.html", "../../../p/1.html", "1.html", "./1.html#top",
    "HTTP://H/p/1.html", "http://h:80/p/1.html", "https://h:443/p/1.html", "//h/p/1.html",
    "//H:80/p/1.html", "///p/1.html", "  /p/1.html  ", "\n/p/1.html",
    # plain paths (appended to the site's spelling directly) and near misses
    "/docs/page-1.html", "/a/b/c/", "/_x~y", "/-", "/x.y.z", "/x/.hidden", "/x/..", "/x/./y",
    "/x//y", "/x/", "/X/Y.HTML", "/x:y", "/x@y", "/x;y=1", "/x+y", "/x!", "/x'y", "/x*y",
    # percent-encoding, spaces, non-ASCII, reserved characters
    "/a%2fb", "/a%2Fb", "/%7euser/", "/~user/", "/a b", "/a%20b", "/é", "/%C3%A9", "/%e9",
    "/x?a=%41&b=c d", "/x?q=1#frag", "/x#a%20b", "/x#", "/%2e%2e/x", "/a/%2E/b", "/x%",
    # queries, fragments and empties relative to the base
    "?q=1", "?", "#f", "#", "", "   ", ".", "..", "./", "../", "/..", "/.",
    # ports, hosts, users
    "http://h", "http://h?x=1", "http://h/?x=1", "https://h:8443/x", "http://h:99999/",
    "http://[::1]:80/", "http://[::1/", "http://user:pw@h/x", "//user@h:81/x",
    "http://xn--bcher-kva.example/", "http://bücher.example/", "http://h:0/",
    # schemes that are not http(s), and strings that look like schemes
    "mailto:a@b.c", "javascript:void(0)", "data:text/plain,x", "ftp://h/f", "tel:123",
    "http:foo", "http:/foo", "https:x", "1http://x/", "localhost:8080/x", "C:/x", "a+b.c-d:x",
    # characters URL() drops or refuses
    "/\t/evil.org/x", "h\ttp://h/x", "/x\r\n", "\t//evil.org/", "/\\evil", "\\\\evil/x",
    "http://h\\@evil/", "\x01/x", "/x\x00y",
]  # fmt: skip

BASES = [
    "http://h/", "http://h/d/p.html", "http://h/d/p.html?q=1", "http://h/d/", "https://h/d/",
    "http://h:8080/d/e/f", "http://user:pw@h/x/", "https://other.org/", "http://[::1]:8080/a/b",
    "http://h", "http://h?z=9", "http://H:80/D/", "http://h/a%2Fb/c", "https://h:443/",
    "http://bücher.example/x", "http://User:P%41ss@H:8080/", "ftp://h/d/", "mailto:x@h",
]  # fmt: skip


def _plain(links: list[str], base: URL) -> list[tuple[str, URL, str]]:
    out = []
    for link in links:
        found = normalize(link, base) or other_scheme(link)
        if found is not None:
            out.append((str(found[0]), found[0], found[1]))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_resolver_answers_as_normalize_does(seed: int) -> None:
    rng = random.Random(seed)
    resolver = Resolver()
    bases = [URL(b) for b in BASES]
    bases += [found[0] for b in BASES if (found := normalize(b)) is not None]
    rounds = [(base, rng.sample(LINKS, len(LINKS))) for base in bases for _ in range(2)]
    rng.shuffle(rounds)
    for base, links in rounds:
        links = links + links[: rng.randrange(len(links))]  # repeats within one page
        got = resolver.resolve(links, base)
        assert got == _plain(links, base), str(base)
        # The key is the URL's string form, as the crawl's de-duplication needs.
        assert all(key == str(url) for key, url, _ in got)


def test_resolver_memory_is_bounded_and_starting_over_changes_nothing() -> None:
    resolver = Resolver(size=10)
    base = URL("http://h/d/p.html")
    links = [f"/p/{i}.html" for i in range(25)] + [f"http://o/{i}" for i in range(25)]
    for _ in range(3):
        assert resolver.resolve(links, base) == _plain(links, base)
        assert resolver._count <= 10 + len(links)


def test_resolver_keeps_sites_apart() -> None:
    # "/x" means another URL on another host, port, scheme or user.
    resolver = Resolver()
    bases = ["http://h/", "http://h:81/", "https://h/", "http://u@h/", "http://o/"]
    seen = {str(resolver.resolve(["/x"], URL(b))[0][1]) for b in bases}
    assert len(seen) == len(bases)


# ------------------------------------------------------------------ links


def _by_selector(html: bytes | str, page_url: URL) -> PageLinks:
    """The same rules applied to the elements a CSS query finds (the plain way)."""
    selector = ",".join(
        [f"{tag}[{attr}]" for tag, attr in LINK_ATTRS.items()]
        + ["[srcset]", "[id]", "a[name]", "base[href]", "style", "[style]"]
    )
    found = PageLinks(page_url)
    base_href = None
    seen: set[int] = set()
    for node in LexborHTMLParser(html).css(selector):
        if node.mem_id in seen:
            continue
        seen.add(node.mem_id)
        attrs = node.attributes
        if node.tag == "style":
            found.links.extend(css_links(node.text()))
        if attrs.get("style"):
            found.links.extend(css_links(attrs["style"]))
        if node.tag == "base" and "href" in attrs:
            if base_href is None:
                base_href = attrs["href"] or ""
            continue
        value = attrs.get(LINK_ATTRS.get(node.tag, ""))
        if value:
            found.links.append(value)
        if attrs.get("srcset"):
            found.links.extend(srcset_urls(attrs["srcset"]))
        if attrs.get("id"):
            found.anchors.add(attrs["id"])
        if node.tag == "a" and attrs.get("name"):
            found.anchors.add(attrs["name"])
    if base_href:
        resolved = normalize(base_href, page_url)
        if resolved is not None:
            found.base = resolved[0]
    return found


PAGES = [
    b"",
    b"no markup at all, href=/x.html",
    b"<a href=/a>a</a><A HREF=/B>b</A><a href>empty</a><a href=''>empty</a><a>none</a>",
    b'<html><head><link rel=stylesheet href="s.css"><base href="/sub/"><base href="/other/">'
    b'</head><body id=top><a href="x.html#f" id="l1" name="n1">x</a></body></html>',
    b'<base target=_blank><base href=""><a href=y>y</a>',
    b'<base href="http://[::1/"><a href=y>y</a>',
    b'<img src=i.png srcset="i1.png 1x, i2.png 2x,, ,i3.png"><picture><source src=s.webm '
    b'srcset="a.webp 100w"></picture><div srcset="d.png"></div><video src=v.mp4></video>',
    b"<script src=//cdn/x.js></script><script>document.write('<a href=/no>')</script>"
    b"<iframe src=f.html></iframe><map><area href=m.html></map><embed src=e.swf>",
    b"<svg><a href=/svg-a>svg</a><image href=/svg-img /><use xlink:href=#sym /></svg>"
    b"<math><mi id=m1>x</mi></math>",
    b"<template><a href=/in-template>t</a></template><noscript><a href=/ns>n</a></noscript>"
    b"<!-- <a href=/commented> --><textarea><a href=/text></textarea>",
    b"<table><a href=/foster>f</a><tr><td><a href=/cell>c</a></table>"
    b"<p><a href=/one><a href=/two>nested</a></a>",
    b"<a href=/dup id=dup><a href=/dup id=dup><h2 id='sec 1'>s</h2><a name=''>",
    "<a href='/caf\u00e9'>caf\u00e9</a><a href='/%E2%82%AC'>\u20ac</a>".encode(),
    b"<frameset><frame src=fr.html></frameset>",
    b"<a href='  /spaced  '>s</a><img src='\t/tab.png'>",
    # CSS: <style> elements and style attributes; comments and other strings are not links
    b"<style>a{background:url(/bg.png)} /* url(/no.png) */ @import '/imp.css';</style>"
    b"<p style=\"background:URL('/p.png'); content:'url(/no2)'\" id=p>x</p>",
    b"<STYLE media=print>.x{background-image:image-set('/i1.png' 1x, url(/i2.png) 2x)}</STYLE>"
    b"<base href=/b/ style='mask:url(m.svg#m)'><div style='color:red'>url( in text</div>",
    b"<style>@import url(a.css) screen; @media print{@font-face{src:url(f.woff2)}}</style>"
    b"<a href=x style='background:url(\"q.png\")'>x</a>",
]


@pytest.mark.parametrize("html", PAGES)
def test_one_walk_finds_what_the_selector_finds(html: bytes) -> None:
    for page in ("http://h/d/p.html", "https://h:8443/"):
        fast, plain = extract(html, URL(page)), _by_selector(html, URL(page))
        assert fast.links == plain.links
        assert fast.anchors == plain.anchors
        assert fast.base == plain.base


def test_one_walk_over_the_generated_site() -> None:
    from helpers.crawl_site import Site

    site = Site(40)
    for i in range(40):
        html = site.tree_page(i, "127.0.0.1:8000").encode()
        base = URL(f"http://127.0.0.1:8000/p/{i}.html")
        assert extract(html, base) == _by_selector(html, base)


# ------------------------------------------------------------- referrers


def test_add_referrer_counts_each_page_once() -> None:
    # A crawl admits all of one page's links before the next page's, and each
    # page once: the calls for one link come in runs of the same referrer.
    rng = random.Random(7)
    pages = [f"http://h/p/{i}" for i in range(3 * MAX_REFERRERS)]
    link = Link("http://h/x", "page", 1)
    for page in pages:
        for _ in range(rng.randrange(1, 4)):  # the page links to it 1-3 times
            link.add_referrer(page)
    assert link.referrer_count == len(pages)  # exact, past the kept ones too
    assert link.referrers == pages[:MAX_REFERRERS]
