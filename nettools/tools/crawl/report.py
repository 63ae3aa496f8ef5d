"""Writing a ``CrawlResult``: text, json, jsonl, csv or junit.

* ``text``: each broken link with its reason and the pages linking to it,
  each link to a scheme that is not fetched (``mailto:``, ``file:``...), then
  one summary line.
* ``json``: one object: ``summary``, ``broken`` and every ``link``.
* ``jsonl``: one object per checked link (and per checked ``#fragment``), each
  with ``ok`` and ``reason``.
* ``csv``: the same rows as jsonl, with a header.
* ``junit``: one ``testcase`` per checked link and fragment, so CI systems
  list each broken link as a failed test (with its referrers in the text);
  links never requested (robots.txt, a scheme not fetched, stopped) are
  ``skipped``.

"Checked links" are the URLs that pages (or the command line, or a sitemap)
link to; the hops of a redirect chain are part of the link that starts it.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import TextIO

from yarl import URL

from .results import Broken, CrawlResult, Link

__all__ = ["FORMATS", "write_report", "summary_line"]

FORMATS = ("text", "json", "jsonl", "csv", "junit")
#: Referrers printed per broken link in the text report.
TEXT_REFERRERS = 5


def write_report(result: CrawlResult, fmt: str, out: TextIO) -> None:
    """Write ``result`` to ``out`` in format ``fmt`` (one of ``FORMATS``)."""
    writer = {
        "text": _text,
        "json": _json,
        "jsonl": _jsonl,
        "csv": _csv,
        "junit": _junit,
    }.get(fmt)
    if writer is None:
        raise ValueError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})")
    writer(result, out)


def summary_line(result: CrawlResult) -> str:
    """The one-line JSON summary (for stderr)."""
    return json.dumps(result.summary())


def _rows(result: CrawlResult) -> Iterator[dict]:
    """One row per checked link and per checked fragment."""
    broken = {b.url: b for b in result.broken if b.kind != "fragment"}
    for link in _checked(result):
        row = link.to_dict()
        fail = broken.get(link.url)
        row["ok"] = fail is None
        row["reason"] = fail.reason if fail is not None else _state(link)
        yield row
    for frag in result.fragments:
        yield {
            "url": frag.url,
            "kind": "fragment",
            "ok": frag.ok,
            "reason": "" if frag.ok else "missing anchor",
            "referrers": frag.referrers,
            "referrer_count": len(frag.referrers),
        }


def _checked(result: CrawlResult) -> list[Link]:
    return [lk for lk in result.links if lk.checked]


def _state(link: Link) -> str:
    if link.skipped:
        return f"skipped: {link.skipped}"
    if link.redirect:
        return f"redirects to {link.redirect}"
    return f"HTTP {link.status}" if link.status is not None else ""


def _text(result: CrawlResult, out: TextIO) -> None:
    for b in result.broken:
        out.write(f"BROKEN {b.url}  ({b.reason})\n")
        _referrers(out, b.referrers, b.referrer_count)
    for link in _checked(result):
        if link.skipped == "scheme":
            out.write(f"SKIPPED {link.url}  (scheme: {link.url.partition(':')[0]})\n")
            _referrers(out, link.referrers, link.referrer_count)
    s = result.summary()
    stopped = f", stopped early ({s['stopped']})" if s["stopped"] else ""
    skipped = f", {s['scheme_skipped']} skipped (scheme)" if s["scheme_skipped"] else ""
    out.write(
        f"{s['pages']} pages, {s['checked']} external links checked, {s['broken']} broken"
        f"{skipped}, {s['redirects']} redirects, {s['bytes']} bytes in {s['elapsed']}s "
        f"({s['pages_per_s']} pages/s){stopped}\n"
    )


def _referrers(out: TextIO, referrers: list[str], count: int) -> None:
    shown = referrers[:TEXT_REFERRERS]
    more = count - len(shown)
    if shown:
        out.write("  linked from: " + ", ".join(shown))
        out.write(f" (+{more} more)\n" if more > 0 else "\n")


def _json(result: CrawlResult, out: TextIO) -> None:
    json.dump(
        {
            "summary": result.summary(),
            "broken": [b.to_dict() for b in result.broken],
            "links": list(_rows(result)),
        },
        out,
        indent=2,
    )
    out.write("\n")


def _jsonl(result: CrawlResult, out: TextIO) -> None:
    for row in _rows(result):
        out.write(json.dumps(row) + "\n")


_CSV_FIELDS = ("url", "kind", "ok", "status", "reason", "depth", "content_type", "size",
               "referrer_count", "referrers")  # fmt: skip


def _csv(result: CrawlResult, out: TextIO) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, _CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in _rows(result):
        row["referrers"] = " ".join(row.get("referrers") or ())
        writer.writerow(row)
    out.write(buf.getvalue())


def _junit(result: CrawlResult, out: TextIO) -> None:
    broken: dict[str, Broken] = {b.url: b for b in result.broken}
    suite = ET.Element("testsuite", name="nettools crawl")
    tests = failures = skipped = 0
    for link in _checked(result):
        tests += 1
        case = ET.SubElement(
            suite, "testcase", classname=_classname(link.url), name=link.url,
            time=f"{link.elapsed:.3f}",
        )  # fmt: skip
        fail = broken.get(link.url)
        if fail is not None:
            failures += 1
            _failure(case, fail)
        elif link.skipped:
            skipped += 1
            ET.SubElement(case, "skipped", message=link.skipped)
    for frag in result.fragments:
        tests += 1
        case = ET.SubElement(suite, "testcase", classname=_classname(frag.url), name=frag.url)
        fail = broken.get(frag.url)
        if fail is not None:
            failures += 1
            _failure(case, fail)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    suite.set("time", f"{result.elapsed:.3f}")
    root = ET.Element("testsuites", name="nettools crawl", tests=str(tests),
                      failures=str(failures), errors="0", time=f"{result.elapsed:.3f}")  # fmt: skip
    root.append(suite)
    ET.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")


def _failure(case: ET.Element, fail: Broken) -> None:
    node = ET.SubElement(case, "failure", message=fail.reason, type="broken-link")
    lines = [f"{fail.url}: {fail.reason}", f"linked from {fail.referrer_count} page(s):"]
    lines += [f"  {ref}" for ref in fail.referrers]
    node.text = "\n".join(lines)


def _classname(url: str) -> str:
    """The link's host, dots kept (CI systems group test cases by it)."""
    try:
        return URL(url).host or "links"
    except ValueError:
        return "links"
