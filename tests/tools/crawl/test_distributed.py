"""The distributed crawl: ``nettools crawl --distribute`` with ``nettools crawl-worker``
processes against the generated site, which records every request (and who made it:
each worker names itself in its User-Agent).

The same pages as a single-process crawl; a worker killed (SIGKILL) while the site
holds its request loses nothing (its job is re-issued after the lease); a worker
stopped by SIGTERM finishes its job first; per-host limits and robots.txt hold across
workers; bad endpoints, a coordinator that never comes, and a coordinator stopped by
SIGTERM that still writes its report."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack

import pytest
from helpers.cli import clean_env, last_json, run_cli
from helpers.crawl_site import External, Site, serve

pytestmark = pytest.mark.timeout(60)

PAGES = 120
PER_HOST = 2
#: Short enough that a test waits little for a dead worker's job; long enough
#: (four heartbeats) that a live worker on a loaded machine keeps its jobs.
LEASE = "2s"


def nettools(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nettools", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env())  # fmt: skip


def read_line(stream, limit: float = 20.0) -> str:
    """The next line of a child's pipe, waiting at most ``limit`` seconds.

    Read in a thread: select() on a buffered text stream cannot see lines that
    an earlier readline() already pulled into the buffer."""
    box: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    try:
        return box.get(timeout=limit)
    except queue.Empty:
        raise AssertionError(f"nothing within {limit}s") from None


def wait_for_line(stream, text: str, limit: float = 20.0) -> str:
    """Read lines (at most 200) until one contains ``text``."""
    deadline = time.monotonic() + limit
    for _ in range(200):
        line = read_line(stream, max(0.1, deadline - time.monotonic()))
        assert line, f"the stream ended before {text!r}"
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r}")


class Cluster:
    """A coordinator (``nettools crawl URL --distribute``) and its workers, all killed
    on leaving the ``with``."""

    def __init__(self, url: str, *args: str, workers: int = 3, min_workers: int | None = None,
                 worker_args=()) -> None:
        self.stack = ExitStack()
        wanted = str(min_workers or workers)
        self.coordinator = self._child("crawl", url, "--distribute", "tcp://127.0.0.1:0",
                                       "--lease", LEASE, "--min-workers", wanted,
                                       *args)  # fmt: skip
        ready = json.loads(read_line(self.coordinator.stderr))  # the first line on stderr
        assert ready["event"] == "listening" and ready["service"] == "crawl"
        self.endpoint = ready["address"]
        assert self.endpoint.startswith("tcp://127.0.0.1:") and not self.endpoint.endswith(":0")
        self.workers: dict[str, subprocess.Popen] = {}
        for i in range(workers):
            self.start_worker(f"w{i}", *worker_args)

    def start_worker(self, name: str, *args: str) -> subprocess.Popen:
        proc = self.workers[name] = self._child("crawl-worker", self.endpoint, "--name", name,
                                                "--idle-timeout", "30s", *args)  # fmt: skip
        return proc

    def _child(self, *args: str) -> subprocess.Popen:
        proc = nettools(*args)
        self.stack.callback(_reap, proc)
        return proc

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stack.close()

    def finish(self) -> tuple[int, str, str]:
        """Wait for the coordinator: (returncode, stdout, stderr after the ready line)."""
        out, err = self.coordinator.communicate(timeout=45)
        return self.coordinator.returncode, out, err

    def worker_exits(self) -> dict[str, tuple[int, dict]]:
        """Each worker's exit status and summary (its last line on stderr)."""
        done = {}
        for name, proc in self.workers.items():
            _, err = proc.communicate(timeout=20)
            last = err.strip().splitlines()[-1] if err.strip() else "{}"
            done[name] = (proc.returncode, json.loads(last) if last.startswith("{") else {})
        return done


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def rows(report: dict) -> set:
    return {(r["url"], r.get("status"), r["ok"], r["reason"]) for r in report["links"]}


SAME = ("pages", "checked", "requests", "broken", "redirects", "robots_skipped", "stopped")


@pytest.fixture(scope="module")
def local_and_distributed():
    """The same crawl of the same site, once in one process, once by three workers:
    (base, ext, {mode: (report, counts, max in flight, external counts, agents)}), plus
    the workers' exits."""
    site, ext = Site(PAGES, retry_after=0, slow=0.01), External()
    args = ("--per-host", str(PER_HOST), "--check-links", "--check-fragments", "--max-body",
            "64K", "--format", "json")  # fmt: skip
    with serve(ext) as ext_srv:
        site.external = ext_srv.url
        with serve(site) as srv:
            runs = {}
            proc = run_cli("crawl", srv.url + "/", *args)
            assert proc.returncode == 2, proc.stderr  # the site has broken links
            host = srv.url.split("//")[1]
            runs["local"] = (json.loads(proc.stdout), Counter(site.counts),
                             site.max_inflight[host], Counter(ext.counts),
                             set(site.agents))  # fmt: skip
            site.reset()
            ext.reset()
            with Cluster(srv.url + "/", *args, "--concurrency", "12",
                         worker_args=("--concurrency", "4")) as cluster:  # fmt: skip
                code, out, err = cluster.finish()
                assert code == 2, err
                exits = cluster.worker_exits()
            runs["distributed"] = (json.loads(out), Counter(site.counts),
                                   site.max_inflight[host], Counter(ext.counts),
                                   set(site.agents))  # fmt: skip
            yield srv.url, ext_srv.url, runs, exits, err


def test_three_workers_find_the_same_pages_as_one_process(local_and_distributed):
    base, _, runs, _, _ = local_and_distributed
    local, dist = runs["local"][0], runs["distributed"][0]
    assert {k: dist["summary"][k] for k in SAME} == {k: local["summary"][k] for k in SAME}
    assert local["summary"]["pages"] > PAGES
    assert rows(dist) == rows(local)  # every link, its status, verdict and reason
    assert sorted(b["url"] for b in dist["broken"]) == sorted(b["url"] for b in local["broken"])
    assert base + "/frag.html#nope" in {b["url"] for b in dist["broken"]}  # anchors came back


def test_each_request_was_made_once_as_in_one_process(local_and_distributed):
    _, _, runs, _, _ = local_and_distributed
    (_, local, _, local_ext, _), (_, dist, _, dist_ext, _) = runs["local"], runs["distributed"]
    assert dist == local and dist_ext == local_ext
    assert dist[("GET", "/robots.txt")] == 1
    assert {k: n for k, n in dist.items() if n > 1} == {("GET", "/busy"): 2}  # 429, then 200


def test_every_worker_took_part_and_left_when_the_crawl_was_done(local_and_distributed):
    _, _, runs, exits, err = local_and_distributed
    summary = last_json(err)
    workers = summary["workers"]
    assert workers["joined"] == 3 and workers["reissued"] == 0 and workers["lost"] == 0
    assert set(workers["jobs"]) == {"w0", "w1", "w2"}
    assert sum(workers["jobs"].values()) == summary["requests"]
    agents = runs["distributed"][4]
    assert {a.rsplit("crawl-worker/", 1)[1] for a in agents} == {"w0", "w1", "w2"}
    for name, (code, worker) in exits.items():
        assert code == 0 and worker["reason"] == "done" and worker["name"] == name
        assert worker["jobs"] >= workers["jobs"][name]


def test_per_host_limit_holds_across_all_workers(local_and_distributed):
    # Twelve jobs may be out at once, and each worker takes four: the host still
    # never sees more than --per-host requests at a time.
    _, _, runs, _, _ = local_and_distributed
    assert 1 < runs["distributed"][2] <= PER_HOST


def test_robots_disallowed_paths_are_never_requested(local_and_distributed):
    base, _, runs, _, _ = local_and_distributed
    report, counts = runs["distributed"][:2]
    assert not [p for (_, p) in counts if p.startswith("/private")]
    skipped = {r["url"] for r in report["links"] if r["reason"] == "skipped: robots"}
    assert skipped == {base + "/private/secret.html", base + "/private/"}


HELD = "/p/3.html"


def requested_pages(site: Site, base: str) -> set[str]:
    """The pages the site was asked for, as URLs."""
    return {base + p for (method, p) in site.counts if method == "GET" and p != "/robots.txt"}


def test_a_killed_worker_loses_no_url():
    # Each worker does one job at a time.  The site holds the first request for
    # HELD until the worker that made it has been killed, so that job can only
    # be finished by another worker, after the lease runs out.
    site = Site(PAGES, retry_after=0, slow=0.01)
    site.hold_path = HELD
    with serve(site) as srv:
        base = srv.url
        with Cluster(base + "/", "--max-body", "64K", "--format", "json",
                     worker_args=("--concurrency", "1")) as cluster:  # fmt: skip
            try:
                assert site.held.wait(30), "nobody asked for the held page"
                victim = cluster.workers[site.held_agent.rsplit("crawl-worker/", 1)[1]]
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
            finally:
                site.release.set()
            code, out, err = cluster.finish()
        expected = site.expected_pages(base)
    assert code == 2, err
    report = json.loads(out)
    assert report["summary"]["pages"] == len(expected)
    assert requested_pages(site, base) == expected
    (held,) = [r for r in report["links"] if r["url"] == base + HELD]
    assert held["ok"] and held["status"] == 200
    workers = last_json(err)["workers"]
    assert workers["reissued"] >= 1 and workers["lost"] == 0
    # The held page twice (the dead worker's try, then the re-issued job), /busy
    # twice (429, then 200), everything else once.
    twice = {p: n for (_, p), n in site.counts.items() if n > 1}
    assert twice == {HELD: 2, "/busy": 2}
    assert f"{base}{HELD}" not in {b["url"] for b in report["broken"]}


def test_a_worker_stopped_by_sigterm_finishes_its_job_first():
    site = Site(PAGES, retry_after=0, slow=0.01)
    site.hold_path = HELD
    with serve(site) as srv:
        base = srv.url
        with Cluster(base + "/", "--max-body", "64K", "--format", "json",
                     worker_args=("--concurrency", "1")) as cluster:  # fmt: skip
            try:
                assert site.held.wait(30), "nobody asked for the held page"
                name = site.held_agent.rsplit("crawl-worker/", 1)[1]
                worker = cluster.workers[name]
                worker.send_signal(signal.SIGTERM)
                wait_for_line(worker.stderr, "stopping: finishing the 1 jobs in hand")
            finally:
                site.release.set()
            _, err = worker.communicate(timeout=20)
            code, out, coord_err = cluster.finish()
        expected = site.expected_pages(base)
    assert worker.returncode == 0, err
    assert last_json(err)["reason"] == "stopped"
    assert code == 2, coord_err
    report = json.loads(out)
    assert report["summary"]["pages"] == len(expected)
    assert requested_pages(site, base) == expected
    workers = last_json(coord_err)["workers"]
    assert workers["reissued"] == 0 and workers["jobs"][name] >= 1
    assert site.counts[("GET", HELD)] == 1  # answered by the worker that was stopping


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_coordinator_still_writes_the_report(tmp_path, sig):
    # Requests after the 20th hang until the end of the test, so the crawl can
    # only end because of the signal; the workers are told it is over.
    site = Site(400, page_sleep=0.03, retry_after=0)
    site.reach_at = site.hold_from = 20
    report = tmp_path / "report.json"
    with serve(site) as srv:
        with Cluster(srv.url + "/", "--concurrency", "2", "--format", "json", "-o", str(report),
                     workers=2) as cluster:  # fmt: skip
            try:
                assert site.reached.wait(30), "the crawl never got going"
                cluster.coordinator.send_signal(sig)
                code, out, err = cluster.finish()
                exits = cluster.worker_exits()
            finally:
                site.release.set()
    doc = json.loads(report.read_text())
    assert doc["summary"]["stopped"] == "interrupted" and 0 < doc["summary"]["pages"] < 400
    assert out == "" and "Traceback" not in err
    summary = last_json(err)
    assert summary["stopped"] == "interrupted" and summary["workers"]["joined"] == 2
    assert code == (2 if doc["broken"] else 1)
    assert all(code == 0 and w["reason"] == "done" for code, w in exits.values()), exits


@pytest.mark.parametrize(
    "args",
    [
        ["crawl", "http://127.0.0.1:1/", "--distribute", "nonsense"],
        ["crawl", "http://127.0.0.1:1/", "--distribute", "http://127.0.0.1:5557"],
        ["crawl", "http://127.0.0.1:1/", "--distribute", "connect:tcp://127.0.0.1:5557"],
        ["crawl", "http://127.0.0.1:1/", "--distribute", "tcp://no-such-interface.invalid:5"],
        ["crawl", "http://127.0.0.1:1/", "--distribute", "tcp://127.0.0.1:0", "--lease", "0s"],
        ["crawl", "http://127.0.0.1:1/", "--distribute", "tcp://127.0.0.1:0",
         "--max-message", "512"],
        ["crawl-worker", "nonsense"],
        ["crawl-worker", "tcp://127.0.0.1"],
        ["crawl-worker", "bind:tcp://127.0.0.1:5557"],
        ["crawl-worker", "tcp://127.0.0.1:5557", "--concurrency", "0"],
        ["crawl-worker", "tcp://127.0.0.1:5557", "--idle-timeout", "0s"],
        ["crawl-worker", "tcp://127.0.0.1:5557", "--max-message", "512"],
        ["crawl-worker"],
    ],
)
def test_bad_endpoints_and_options_exit_2_in_one_line(args):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"nettools {args[0]}")


def test_a_worker_without_a_coordinator_gives_up_after_idle_timeout():
    # A port that is bound but not listening: nothing will ever answer there.
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
        proc = run_cli("crawl-worker", endpoint, "--idle-timeout", "300ms", "--name", "lonely")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == f"nettools crawl-worker: no word from the coordinator at {endpoint} for 0.3s"
    summary = json.loads(lines[-1])
    assert summary == {"event": "stopped", "service": "crawl-worker", "name": "lonely",
                       "reason": "gone", "jobs": 0, "errors": 0, "too_big": 0, "oversized": 0,
                       "welcomes": 0}


def test_malformed_messages_are_counted_and_the_crawl_goes_on():
    # A plain pyzmq peer sends rubbish, then joins with no free slot (it is the
    # second worker --min-workers waits for, so all of it is read before the crawl
    # starts), then says goodbye when told the crawl is done.
    import zmq

    rubbish = [
        [b"nonsense"],
        [b"beat", b"{not json"],
        [b"beat", b"[1]"],
        [b"a", b"{}", b"b", b"c"],
        [b"hello", b'{"v": 99, "name": "x", "session": "s", "credit": 1}'],
        [b"hello", b'{"v": 1}'],
        [b"result", b'{"id": 1}'],
    ]
    after_joining = [[b"frobnicate", b"{}"], [b"beat", b'{"jobs": 5}']]
    site = Site(20, retry_after=0, slow=0.01)
    ctx = zmq.Context()
    peer = ctx.socket(zmq.DEALER)
    peer.linger = 0
    try:
        with serve(site) as srv:
            base = srv.url
            with Cluster(base + "/", "--max-body", "64K", "--format", "json", "--max-message",
                         "64K", workers=0, min_workers=2) as cluster:  # fmt: skip
                peer.connect(cluster.endpoint)
                for frames in rubbish:
                    peer.send_multipart(frames)
                # Over the cap: dropped and counted, and the peer stays connected.
                peer.send_multipart([b"beat", b"x" * 100_000])
                peer.send_multipart([b"hello", json.dumps(
                    {"v": 1, "name": "rubbish", "session": "s1", "credit": 0}).encode()])
                for frames in after_joining:
                    peer.send_multipart(frames)
                worker = cluster.start_worker("w0")
                for _ in range(100):  # welcome, beats..., done
                    assert peer.poll(30_000), "the coordinator went quiet"
                    kind, *_ = peer.recv_multipart()
                    if kind == b"done":
                        peer.send_multipart([b"bye", b"{}"])
                        break
                code, out, err = cluster.finish()
                _, werr = worker.communicate(timeout=20)
            expected = site.expected_pages(base)
    finally:
        peer.close()
        ctx.term()
    assert code == 2, err
    assert "Traceback" not in err
    summary = last_json(err)
    assert summary["pages"] == len(expected)
    workers = summary["workers"]
    assert workers["malformed"] == len(rubbish) + len(after_joining)
    assert workers["oversized"] == 1
    assert workers["joined"] == 2 and set(workers["jobs"]) == {"w0"}
    assert worker.returncode == 0, werr


def test_a_result_over_the_message_cap_fails_its_link_not_the_worker():
    # The home page links to a few dozen pages: its result does not fit in 1 KiB.
    site = Site(20, retry_after=0, slow=0.01)
    with serve(site) as srv:
        base = srv.url
        with Cluster(base + "/", "--retries", "0", "--format", "json", workers=1,
                     worker_args=("--max-message", "1K")) as cluster:  # fmt: skip
            code, out, err = cluster.finish()
            exits = cluster.worker_exits()
    assert code == 2, err
    (home,) = [b for b in json.loads(out)["broken"] if b["url"] == base + "/"]
    assert home["reason"] == "other: result over the 1024 byte message cap"
    code, worker = exits["w0"]
    assert code == 0 and worker["too_big"] == 1 and worker["reason"] == "done"


def test_a_worker_joins_the_coordinator_that_replaces_a_dead_one():
    # The first coordinator is killed mid-crawl (the site holds requests after the
    # 20th, so it cannot have finished); a second one binds the same endpoint and
    # crawls again.  The worker, knowing nothing of this, hears "who are you?" and
    # joins the new crawl; answers it still had for the old one are ignored.
    site = Site(PAGES, retry_after=0, slow=0.01)
    site.reach_at = site.hold_from = 20
    with serve(site) as srv:
        base = srv.url
        with Cluster(base + "/", "--max-body", "64K", workers=1,
                     worker_args=("--concurrency", "2")) as first:  # fmt: skip
            try:
                assert site.reached.wait(30), "the crawl never got going"
                first.coordinator.kill()
                first.coordinator.wait(10)
            finally:
                site.release.set()
            site.reset()
            second = nettools("crawl", base + "/", "--distribute", first.endpoint, "--lease",
                              LEASE, "--max-body", "64K", "--format", "json")  # fmt: skip
            first.stack.callback(_reap, second)
            ready = json.loads(read_line(second.stderr))
            assert ready["address"] == first.endpoint
            out, err = second.communicate(timeout=45)
            exits = first.worker_exits()
        expected = site.expected_pages(base)
    assert second.returncode == 2, err
    summary = last_json(err)
    assert summary["pages"] == len(expected) and requested_pages(site, base) == expected
    assert summary["workers"]["jobs"] == {"w0": summary["requests"]}
    code, worker = exits["w0"]
    assert code == 0 and worker["reason"] == "done" and worker["welcomes"] == 2
