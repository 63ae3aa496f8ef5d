"""The static server's pure parts: a target's path under the root (``paths``) and
the answer to conditional and range requests (``conditional``)."""

from __future__ import annotations

import os

import pytest

from nettools.tools.static.conditional import decide, parse_range
from nettools.tools.static.files import FileCache, FileInfo, content_type
from nettools.tools.static.paths import BadTarget, Root, split_target, url_path

# ------------------------------------------------------------------ paths


@pytest.fixture
def root(tmp_path):
    (tmp_path / "site").mkdir()
    return Root(str(tmp_path / "site"))


@pytest.mark.parametrize("target", [
    b"/..", b"/../etc/passwd", b"/%2e%2e/etc/passwd", b"/%2E%2e/etc/passwd",
    b"/%2e%2e%2fetc%2fpasswd", b"/a/../../etc/passwd", b"/a/%2e%2e/%2E%2E/etc/passwd",
    b"/./../x", b"/..%2f..%2fetc",
])  # fmt: skip
def test_a_path_climbing_above_the_root_is_refused_however_it_is_written(root, target):
    with pytest.raises(BadTarget):
        root.locate(target)


def test_dot_segments_inside_the_root_are_removed(root):
    located = root.locate(b"/docs/./a/../b.html")
    assert located.segments == ("docs", "b.html")
    assert located.path == os.path.join(root.directory, "docs", "b.html")
    assert not located.slash
    assert root.locate(b"/docs/sub/..").slash  # ends in a directory


def test_percent_encoding_is_decoded_once(root):
    assert root.locate(b"/%252e%252e/x").segments == ("%2e%2e", "x")
    assert root.locate(b"/a%20b.txt").segments == ("a b.txt",)


def test_a_nul_byte_is_refused(root):
    with pytest.raises(BadTarget):
        root.locate(b"/a.txt%00.html")


def test_names_that_are_not_utf8_keep_their_bytes(root):
    located = root.locate(b"/caf%E9.txt")
    assert os.fsencode(located.path).endswith(b"/caf\xe9.txt")


def test_hidden_names_are_refused_except_well_known(tmp_path):
    (tmp_path / "site").mkdir()
    root = Root(str(tmp_path / "site"))
    assert root.locate(b"/.git/config") is None
    assert root.locate(b"/a/.env") is None
    assert root.locate(b"/.well-known/security.txt").segments == (".well-known", "security.txt")
    shown = Root(str(tmp_path / "site"), hidden=True)
    assert shown.locate(b"/.git/config").segments == (".git", "config")


def test_symbolic_links_may_not_lead_out_of_the_root(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (site / "inside.txt").write_text("ok")
    (site / "out").symlink_to(tmp_path / "secret.txt")
    (site / "in").symlink_to(site / "inside.txt")
    root = Root(str(site))
    assert not root.contains(str(site / "out"))
    assert root.contains(str(site / "in"))
    assert root.contains(str(site))
    assert Root(str(site), follow_symlinks=True).contains(str(site / "out"))


def test_split_target_takes_the_path_of_any_form():
    assert split_target(b"/a/b?x=1#f") == (b"/a/b", b"x=1")
    assert split_target(b"http://example.org/a?q") == (b"/a", b"q")
    assert split_target(b"http://example.org") == (b"/", b"")
    for bad in (b"*", b"a/b", b"ftp://host/x"):
        with pytest.raises(BadTarget):
            split_target(bad)


def test_url_path_encodes_every_name_and_never_starts_with_two_slashes():
    assert url_path(("evil.com",), True) == "/evil.com/"
    assert url_path(("a b", "<x>&#?"), False) == "/a%20b/%3Cx%3E%26%23%3F"
    assert url_path((), True) == "/"


# ------------------------------------------------------------------ files


def test_media_types_come_from_mimetypes_and_compressed_files_stay_compressed():
    assert content_type("a.html") == "text/html"
    assert content_type("a.css") == "text/css"
    assert content_type("a.json") == "application/json"
    assert content_type("a.tar.gz") == "application/gzip"
    assert content_type("a.unknown-type") == "application/octet-stream"


def test_the_cache_keeps_an_entry_only_while_the_file_is_unchanged(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"one")
    cache = FileCache(revalidate=0)
    cache.put(b"/a.txt", FileInfo.of(str(f), os.stat(f), b"one"))
    assert cache.get(b"/a.txt").body == b"one"
    f.write_bytes(b"three")  # a new size: another version of the file
    assert cache.get(b"/a.txt") is None
    assert cache.get(b"/a.txt") is None  # and the stale entry is gone


def test_the_cache_keeps_within_its_entries_and_its_bytes(tmp_path):
    cache = FileCache(entries=2, budget=10)
    for i in range(3):
        f = tmp_path / f"{i}.txt"
        f.write_bytes(b"x" * 4)
        cache.put(b"/%d" % i, FileInfo.of(str(f), os.stat(f), b"x" * 4))
    assert cache.get(b"/0") is None and cache.get(b"/2") is not None
    assert cache.held <= 10
    big = tmp_path / "big"
    big.write_bytes(b"y" * 20)
    cache.put(b"/big", FileInfo.of(str(big), os.stat(big), b"y" * 20))
    assert cache.get(b"/big").body is None  # over the budget: served from the disk


# ------------------------------------------------------------------ conditions


@pytest.fixture
def info(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"0123456789")
    os.utime(f, (1_700_000_000, 1_700_000_000))
    return FileInfo.of(str(f), os.stat(f), b"0123456789")


OLDER = b"Tue, 14 Nov 2023 22:00:00 GMT"  # before the file's mtime
SAME = b"Tue, 14 Nov 2023 22:13:20 GMT"  # its mtime
NEWER = b"Wed, 15 Nov 2023 00:00:00 GMT"


def test_no_condition_is_the_whole_file(info):
    assert decide("GET", {}, info) == (200, 0, 9)


def test_if_none_match_makes_a_304_with_weak_comparison(info):
    assert decide("GET", {b"if-none-match": info.etag}, info)[0] == 304
    assert decide("GET", {b"if-none-match": b'"x", W/' + info.etag}, info)[0] == 304
    assert decide("HEAD", {b"if-none-match": b"*"}, info)[0] == 304
    assert decide("GET", {b"if-none-match": b'"other"'}, info)[0] == 200


def test_if_modified_since_counts_only_without_if_none_match(info):
    assert decide("GET", {b"if-modified-since": SAME}, info)[0] == 304
    assert decide("GET", {b"if-modified-since": NEWER}, info)[0] == 304
    assert decide("GET", {b"if-modified-since": OLDER}, info)[0] == 200
    assert decide("GET", {b"if-modified-since": b"not a date"}, info)[0] == 200
    headers = {b"if-modified-since": SAME, b"if-none-match": b'"other"'}
    assert decide("GET", headers, info)[0] == 200


def test_if_match_and_if_unmodified_since_fail_with_412(info):
    assert decide("GET", {b"if-match": b'"other"'}, info)[0] == 412
    assert decide("GET", {b"if-match": b"W/" + info.etag}, info)[0] == 412  # strong only
    assert decide("GET", {b"if-match": info.etag}, info)[0] == 200
    assert decide("GET", {b"if-unmodified-since": OLDER}, info)[0] == 412
    assert decide("GET", {b"if-unmodified-since": SAME}, info)[0] == 200


@pytest.mark.parametrize(("spec", "span"), [
    (b"bytes=2-5", (2, 5)), (b"bytes=7-", (7, 9)), (b"bytes=-3", (7, 9)),
    (b"bytes=0-100", (0, 9)), (b"bytes=-100", (0, 9)), (b"BYTES = 1 - 1", (1, 1)),
    (b"bytes=10-", (-1, -1)), (b"bytes=-0", (-1, -1)),
    (b"bytes=5-2", None), (b"bytes=0-1,3-4", None), (b"items=0-1", None), (b"bytes=-", None),
])  # fmt: skip
def test_parse_range(spec, span):
    assert parse_range(spec, 10) == span


def test_range_makes_a_206_or_a_416_and_only_for_get(info):
    assert decide("GET", {b"range": b"bytes=2-5"}, info) == (206, 2, 5)
    assert decide("GET", {b"range": b"bytes=20-"}, info)[0] == 416
    assert decide("HEAD", {b"range": b"bytes=2-5"}, info)[0] == 200
    assert decide("GET", {b"range": b"bytes=0-1,5-6"}, info)[0] == 200


def test_if_range_honours_the_range_only_for_the_same_version(info):
    ranged = {b"range": b"bytes=2-5"}
    assert decide("GET", {**ranged, b"if-range": info.etag}, info)[0] == 206
    assert decide("GET", {**ranged, b"if-range": b'"old"'}, info)[0] == 200
    assert decide("GET", {**ranged, b"if-range": SAME}, info)[0] == 206
    assert decide("GET", {**ranged, b"if-range": OLDER}, info)[0] == 200


def test_an_empty_file_has_no_satisfiable_range(tmp_path):
    f = tmp_path / "empty"
    f.write_bytes(b"")
    empty = FileInfo.of(str(f), os.stat(f), b"")
    assert decide("GET", {}, empty) == (200, 0, -1)
    assert decide("GET", {b"range": b"bytes=0-"}, empty)[0] == 416
