"""``nettools feeds``: the fetcher, the cache, the CLI and the service, against
feed fixtures served by a local WSGI server in its own thread (so the CLI
subprocesses can reach it while a test waits for them)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from helpers.cli import NO_PROXY, Cli, clean_env, interrupted_run, last_json, run_cli
from helpers.paths import FEED_FIXTURES as FIXTURES
from helpers.wsgi import Holder, ServerThread

import nettools
from nettools.tools.feeds.cache import FeedCache
from nettools.tools.feeds.fetcher import FeedFetcher, fetch_feeds, read_opml
from nettools.tools.feeds.service import check_public_url
from nettools.web.client import HttpClient

pytestmark = pytest.mark.timeout(60)

LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"

#: fixture file -> (feedparser version, title)
FORMATS = {
    "rss090.rdf": ("rss090", "RSS 0.90 Fixture"),
    "rss091.xml": ("rss091u", "RSS 0.91 Fixture"),
    "rss092.xml": ("rss092", "RSS 0.92 Fixture"),
    "rss10.rdf": ("rss10", "RSS 1.0 Fixture"),
    "rss20.xml": ("rss20", "RSS 2.0 Fixture \u2013 caf\u00e9"),
    "atom03.xml": ("atom03", "Atom 0.3 Fixture"),
    "atom10.xml": ("atom10", "Atom 1.0 Fixture"),
}


class FeedSite:
    """Serves the fixtures with validators and counts what it answers."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []  # (path, status)
        self.holder = Holder(2)
        self.active = 0
        self.peak = 0

    def requests(self, path: str, status: int | None = None) -> int:
        return sum(1 for p, s in self.log if p == path and (status is None or s == status))

    def __call__(self, env, start_response):
        path = env["PATH_INFO"]
        status, headers, body = self.route(env, path)
        self.log.append((path, int(status.split()[0])))
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def route(self, env, path):
        kind, _, name = path.lstrip("/").partition("/")
        if kind in ("f", "lm") and (FIXTURES / name).is_file():
            body = (FIXTURES / name).read_bytes()
            ctype = "application/rdf+xml" if name.endswith(".rdf") else "application/xml"
            headers = [("Content-Type", ctype), ("Last-Modified", LAST_MODIFIED)]
            if kind == "f":  # ETag and Last-Modified; "lm": Last-Modified only
                etag = f'"{hashlib.sha1(body).hexdigest()[:16]}"'
                headers.append(("ETag", etag))
                if env.get("HTTP_IF_NONE_MATCH") == etag:
                    return "304 Not Modified", headers, b""
            elif env.get("HTTP_IF_MODIFIED_SINCE") == LAST_MODIFIED:
                return "304 Not Modified", headers, b""
            return "200 OK", headers, body
        if kind == "hold":
            # Stay busy a while so concurrent fetches overlap here, and count them.
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                nettools.sleep(0.3)
            finally:
                self.active -= 1
            body = (FIXTURES / "atom10.xml").read_bytes()
            return "200 OK", [("Content-Type", "application/atom+xml")], body
        if kind == "held":  # held until the test has interrupted the command
            self.holder.hold()
            return "200 OK", [("Content-Type", "application/xml")], (FIXTURES / name).read_bytes()
        if path == "/slow":
            nettools.sleep(20)  # the per-feed timeout must end the wait first
            return "200 OK", [], (FIXTURES / "rss20.xml").read_bytes()
        if path == "/moved":
            return "301 Moved Permanently", [("Location", "/f/atom10.xml")], b""
        if path == "/gone":
            return "410 Gone", [("Content-Type", "text/plain")], b"gone"
        if path == "/html":
            return "200 OK", [("Content-Type", "text/html")], b"<html><p>not a feed</p></html>"
        if path == "/nolink":
            return "200 OK", [("Content-Type", "application/xml")], (
                b"<?xml version='1.0'?><rss version='2.0'><channel><title>No Links</title>"
                b"<item><title>Linkless entry</title></item></channel></rss>"
            )
        if path == "/big":
            return "200 OK", [("Content-Type", "application/xml")], b"<rss>" + b" " * 300_000
        return "404 Not Found", [("Content-Type", "text/plain")], b"no such feed"


@pytest.fixture
def site():
    app = FeedSite()
    with ServerThread(app) as srv:
        app.url = srv.url
        yield app


@pytest.fixture
def client():
    with HttpClient(proxy_from_env=False, read_timeout=5) as c:
        yield c


def fetch_one(site, client, path, **kw):
    return FeedFetcher(client, **kw).fetch(site.url + path)


# ------------------------------------------------------------------ fetcher


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_gives_title_link_and_entries(site, client, name):
    r = fetch_one(site, client, f"/f/{name}")
    version, title = FORMATS[name]
    assert r.ok, r.error
    assert (r.status, r.version, r.title) == (200, version, title)
    assert r.link.startswith("http://example.org/")
    assert r.entries and all(e.title and e.link for e in r.entries)
    assert not r.bozo


def test_newest_entries_first_and_limited(site, client):
    r = fetch_one(site, client, "/f/rss20.xml", entries=2)
    assert [e.title for e in r.entries] == ["Third post", "Second post"]
    assert r.entries[0].published == "2023-01-04T10:00:00Z"
    everything = fetch_one(site, client, "/f/rss20.xml", entries=10)
    # A relative link is resolved against the feed's URL.
    assert everything.entries[-1].link == site.url + "/rss20/1"
    rdf = fetch_one(site, client, "/f/rss10.rdf")
    assert [e.title for e in rdf.entries] == ["Newer one", "Older one"]


def test_malformed_feed_is_flagged_but_read(site, client):
    r = fetch_one(site, client, "/f/bozo.xml")
    assert r.ok and r.bozo
    assert r.title == "Broken & Bozo Fixture"
    assert "not well-formed" in r.bozo_error


def test_errors_are_per_feed(site, client):
    fetcher = FeedFetcher(client, timeout=0.5)
    paths = ["/f/atom10.xml", "/slow", "/missing", "/html", "/gone", "/f/rss20.xml"]
    results = fetch_feeds([site.url + p for p in paths], fetcher, concurrency=10)
    assert [r.url for r in results] == [site.url + p for p in paths]
    assert [r.kind for r in results] == [None, "timeout", "http", "parse", "gone", None]
    assert results[0].title == "Atom 1.0 Fixture"
    assert results[5].title == FORMATS["rss20.xml"][1]
    assert results[2].status == 404 and results[4].gone
    assert "no complete response within 0.5s" in results[1].error


def test_overall_deadline_reports_unfinished_feeds(site, client):
    fetcher = FeedFetcher(client, timeout=None)
    results = fetch_feeds([site.url + "/f/rss20.xml", site.url + "/slow"], fetcher, deadline=0.5)
    assert results[0].ok
    assert results[1].kind == "deadline"
    assert results[1].error == "deadline: not done within the deadline (0.5s)"


def test_permanent_redirect_is_reported(site, client):
    r = fetch_one(site, client, "/moved")
    assert r.ok and r.title == "Atom 1.0 Fixture"
    assert r.moved_to == site.url + "/f/atom10.xml"


def test_oversized_feed_is_an_error(site, client):
    r = fetch_one(site, client, "/big", max_feed=100_000)
    assert r.kind == "too-large"


@pytest.mark.parametrize("kind", ["f", "lm"])
def test_conditional_get_answers_304_from_the_cache(site, client, tmp_path, kind):
    path = f"/{kind}/atom10.xml"
    with FeedCache(str(tmp_path / "cache.db")) as cache:
        fetcher = FeedFetcher(client, cache=cache)
        first = fetcher.fetch(site.url + path)
        second = fetcher.fetch(site.url + path)
    assert (first.status, first.cached) == (200, False)
    assert (second.status, second.cached) == (304, True)
    assert second.title == first.title and second.entries == first.entries
    assert site.requests(path, 200) == 1 and site.requests(path, 304) == 1


def test_gone_is_remembered(site, client, tmp_path):
    with FeedCache(str(tmp_path / "cache.db")) as cache:
        fetcher = FeedFetcher(client, cache=cache)
        assert fetcher.fetch(site.url + "/gone").gone
        again = fetcher.fetch(site.url + "/gone")
    assert again.gone and again.cached and again.kind == "gone"
    assert site.requests("/gone") == 1


def test_redirects_are_checked_by_the_redirect_check(site, client):
    # The client may connect anywhere, but the redirect target (loopback) is
    # refused by the service's check before it is requested.
    r = fetch_one(site, client, "/moved", redirect_check=check_public_url)
    assert r.kind == "refused-address"
    assert site.requests("/moved") == 1 and site.requests("/f/atom10.xml") == 0


def test_check_public_url_resolves_names():
    for url in ("http://localhost/feed", "http://10.0.0.1/", "http://[::1]:8080/"):
        with pytest.raises(Exception) as info:
            check_public_url(url)
        assert getattr(info.value, "kind", None) == "refused-address", url


def test_read_opml(tmp_path):
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>'
        '<outline text="group"><outline type="rss" xmlUrl="http://a/feed"/>'
        '<outline type="rss" xmlUrl="http://b/feed"/></outline>'
        '<outline type="rss" xmlUrl="http://a/feed"/></body></opml>'
    )
    assert read_opml(str(opml)) == ["http://a/feed", "http://b/feed"]
    bad = tmp_path / "bad.opml"
    bad.write_text("<html>")
    with pytest.raises(ValueError):
        read_opml(str(bad))


# ------------------------------------------------------------------ CLI: fetch


# The test site is on loopback: the CLI fetches from it with --allow-private,
# set through the environment as a user could.
LOCAL_OK = {**NO_PROXY, "NETTOOLS_ALLOW_PRIVATE": "1"}


def feeds(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_cli("feeds", *args, env=LOCAL_OK if env is None else env)


def test_cli_fetch_and_serve_refuse_private_addresses_alike(site):
    url = site.url + "/f/rss20.xml"
    res = feeds("fetch", url, env=NO_PROXY)
    assert res.returncode == 2, res.stderr
    assert f"!! {url}\n" in res.stdout and "non-public address" in res.stdout
    assert site.requests("/f/rss20.xml") == 0  # refused before connecting
    res = feeds("fetch", "--allow-private", url, env=NO_PROXY)
    assert res.returncode == 0, res.stderr
    for command in ("fetch", "serve"):
        text = " ".join(run_cli("feeds", command, "--help").stdout.split())
        assert "Only public addresses are fetched (no private, loopback or link-local ones) " \
               "unless --allow-private" in text
        assert "The same rule holds for feeds fetch and feeds serve" in text


def test_cli_a_feed_without_a_link_shows_none(site):
    res = feeds("fetch", site.url + "/nolink")
    assert res.returncode == 0, res.stderr
    assert "<->" not in res.stdout and "<-" not in res.stdout
    assert res.stdout.splitlines()[0] == "== No Links"
    assert "  Linkless entry" in res.stdout


def test_cli_json_one_object_per_feed_in_order(site):
    urls = [site.url + "/f/" + name for name in FORMATS]
    res = feeds("fetch", "--json", "--entries", "1", *urls)
    assert res.returncode == 0, res.stderr
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["url"] for o in objs] == urls
    assert [o["title"] for o in objs] == [t for _, t in FORMATS.values()]
    assert all(len(o["entries"]) == 1 and o["ok"] for o in objs)


def test_cli_text_and_exit_2_when_a_feed_fails(site):
    res = feeds("fetch", site.url + "/f/rss20.xml", site.url + "/missing", site.url + "/moved")
    assert res.returncode == 2
    assert "== RSS 2.0 Fixture \u2013 caf\u00e9  <http://example.org/rss20/>" in res.stdout
    assert "Third post" in res.stdout
    assert f"!! {site.url}/missing\n   http: status 404" in res.stdout
    assert f"moved permanently to {site.url}/f/atom10.xml" in res.stdout
    summary = last_json(res.stderr)
    assert (summary["feeds"], summary["failed"]) == (3, 1)


@pytest.mark.timeout(40)
def test_cli_sigint_shows_the_feeds_read_and_exits_1(site):
    # Concurrency 2: rss20 is read, two held feeds fill the pool, atom10 never starts.
    urls = [site.url + p for p in
            ("/f/rss20.xml", "/held/rss20.xml", "/held/atom10.xml", "/f/atom10.xml")]  # fmt: skip
    code, out, err = interrupted_run(
        site.holder, "feeds", "fetch", "--json", "--concurrency", "2", *urls, env=LOCAL_OK
    )
    assert code == 1, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["url"] for o in objs] == urls
    assert objs[0]["ok"] and objs[0]["title"] == "RSS 2.0 Fixture \u2013 caf\u00e9"
    for o in objs[1:]:
        assert not o["ok"] and o["kind"] == "interrupted"
        assert o["error"] == "interrupted: not fetched"
    summary = last_json(err)
    assert summary["interrupted"] is True
    assert (summary["ok"], summary["failed"], summary["not_fetched"]) == (1, 0, 3)


@pytest.mark.timeout(40)
def test_cli_sigint_after_a_failure_exits_2_in_text(site):
    urls = [site.url + p for p in ("/missing", "/held/rss20.xml", "/held/atom10.xml")]
    code, out, err = interrupted_run(
        site.holder, "feeds", "fetch", "--concurrency", "2", *urls, env=LOCAL_OK
    )
    assert code == 2, err
    assert f"!! {site.url}/missing\n   http: status 404" in out
    assert f"!! {site.url}/held/rss20.xml\n   interrupted: not fetched" in out
    assert f"!! {site.url}/held/atom10.xml\n   interrupted: not fetched" in out
    summary = last_json(err)
    assert (summary["failed"], summary["not_fetched"], summary["interrupted"]) == (1, 2, True)


def test_cli_slow_feed_times_out_alone(site):
    res = feeds("fetch", "--json", "--timeout", "500ms", site.url + "/slow",
                site.url + "/f/atom10.xml")  # fmt: skip
    assert res.returncode == 2
    slow, good = (json.loads(line) for line in res.stdout.splitlines())
    assert slow["kind"] == "timeout" and good["ok"]


def test_cli_conditional_get_second_run_gets_304(site, tmp_path):
    cache = str(tmp_path / "feeds.db")
    url = site.url + "/f/rss10.rdf"
    first = feeds("fetch", "--json", "--cache", cache, url)
    second = feeds("fetch", "--json", "--cache", cache, url)
    assert first.returncode == second.returncode == 0, second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert (a["status"], a["cached"], b["status"], b["cached"]) == (200, False, 304, True)
    assert b["title"] == a["title"] == "RSS 1.0 Fixture"
    assert site.requests("/f/rss10.rdf", 304) == 1


def test_cli_opml_input(site, tmp_path):
    opml = tmp_path / "subs.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="1.0"><body>'
        f'<outline text="a" xmlUrl="{site.url}/f/atom03.xml"/>'
        f'<outline text="b" xmlUrl="{site.url}/f/rss091.xml"/></body></opml>'
    )
    res = feeds("fetch", "--json", "--opml", str(opml))
    assert res.returncode == 0, res.stderr
    titles = [json.loads(line)["title"] for line in res.stdout.splitlines()]
    assert titles == ["Atom 0.3 Fixture", "RSS 0.91 Fixture"]


def test_cli_urls_from_stdin(site):
    res = subprocess.run(
        [sys.executable, "-m", "nettools", "feeds", "fetch", "--json", "-"],
        input=f"{site.url}/f/atom10.xml\n",
        capture_output=True, text=True, timeout=30, env=clean_env(LOCAL_OK),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["title"] == "Atom 1.0 Fixture"


@pytest.mark.parametrize(
    "args",
    [
        ["fetch"],
        ["fetch", "--opml", "/nonexistent/subs.opml"],
        ["fetch", "--timeout", "later", "http://127.0.0.1/"],
        ["fetch", "--entries", "-1", "http://127.0.0.1/"],
        ["serve", "--listen", "nowhere"],
    ],
)
def test_cli_usage_errors(args):
    res = feeds(*args)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1


def test_cli_bad_opml_and_bad_cache(tmp_path):
    bad = tmp_path / "bad.opml"
    bad.write_text("<opml><unclosed>")
    res = feeds("fetch", "--opml", str(bad))
    assert res.returncode == 2 and "not valid OPML" in res.stderr
    not_db = tmp_path / "cache.db"
    not_db.write_text("this is not a database" * 100)
    res = feeds("fetch", "--cache", str(not_db), "http://127.0.0.1:1/")
    assert res.returncode == 1
    assert res.stderr.startswith("nettools feeds fetch: cannot use the cache file")


# ------------------------------------------------------------------ CLI: serve


def post(base: str, body: str, accept: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(base + "/", data=body.encode(), method="POST")
    if accept:
        req.add_header("Accept", accept)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def serve(*args: str) -> Cli:
    return Cli("feeds", "serve", *args, env=NO_PROXY)


def base_url(cli: Cli) -> str:
    host, port = cli.tcp_address()
    return f"http://{host}:{port}"


def test_service_titles_in_order_as_text_and_json(site):
    with serve("--allow-private", "--timeout", "1s") as cli:
        base = base_url(cli)
        urls = [site.url + "/f/atom10.xml", site.url + "/missing", site.url + "/f/rss092.xml"]
        # Blank lines and "#" comments are skipped, as in a URL file.
        status, text = post(base, "# my feeds\n" + "\n\n".join(urls) + "\n")
        assert status == 200
        assert text.splitlines() == [
            "Atom 1.0 Fixture",
            "error: http: status 404",
            "RSS 0.92 Fixture",
        ]
        status, body = post(base, "\n".join(urls), accept="application/json")
        objs = json.loads(body)
        assert [o["url"] for o in objs] == urls
        assert [(o["title"], o["status"], o["error"]) for o in objs] == [
            ("Atom 1.0 Fixture", 200, None),
            (None, 404, "http: status 404"),
            ("RSS 0.92 Fixture", 200, None),
        ]
        assert objs[0]["link"] == "http://example.org/atom10/"
        with urllib.request.urlopen(base + "/", timeout=10) as resp:
            assert "POST / with feed URLs" in resp.read().decode()
        code, out, err = cli.stop()
    assert code == 0
    summary = last_json(err)
    assert summary["event"] == "stopped" and summary["feeds"] == 6


def test_service_refuses_private_targets_by_default(site):
    with serve() as cli:
        base = base_url(cli)
        targets = [site.url + "/f/atom10.xml", "http://10.0.0.1/feed",
                   f"http://localhost:{site.url.rsplit(':', 1)[1]}/f/rss20.xml"]  # fmt: skip
        status, body = post(base, "\n".join(targets), accept="application/json")
        assert status == 200
        objs = json.loads(body)
        assert [o["kind"] for o in objs] == ["refused-address"] * 3
        assert all(o["title"] is None and o["status"] is None for o in objs)
        assert "127.0.0.1" in objs[0]["error"] and "10.0.0.1" in objs[1]["error"]
    assert site.log == []  # the feed server never saw a request


def test_service_with_allow_private_fetches_them(site):
    with serve("--allow-private") as cli:
        status, text = post(base_url(cli), site.url + "/f/rss090.rdf")
    assert (status, text) == (200, "RSS 0.90 Fixture\n")


def test_one_pool_bounds_fetches_across_all_clients(site):
    with serve("--allow-private", "--concurrency", "2") as cli:
        base = base_url(cli)
        answers: list[str] = []

        def client(n: int) -> None:
            urls = [f"{site.url}/hold/{n}-{i}" for i in range(3)]
            answers.append(post(base, "\n".join(urls))[1])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert answers == ["Atom 1.0 Fixture\n" * 3] * 3
    assert site.requests("/hold/0-0") == 1 and len(site.log) == 9
    assert site.peak == 2  # three clients, nine feeds, never more than two at once


def test_service_limits(site):
    with serve("--max-urls", "2", "--max-request", "200", "--max-feed", "100K",
               "--allow-private") as cli:  # fmt: skip
        base = base_url(cli)
        status, text = post(base, "http://a.example/\nhttp://b.example/\nhttp://c.example/\n")
        assert status == 413 and "at most 2 URLs" in text
        status, text = post(base, "http://example.org/" + "x" * 300)
        assert status == 413
        status, text = post(base, "\n\n")
        assert status == 400 and "no URLs" in text
        status, text = post(base, site.url + "/big")
        assert (status, text) == (200, "error: too-large: feed larger than 102400 bytes\n")
        req = urllib.request.Request(base + "/", method="PUT", data=b"x")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 405
