"""``nettools crawl --state redis://...`` and ``nettools crawl-worker --state``: a
crawl whose state is in a real Redis (Debian's redis-server on a unix socket),
done by several real processes.  The report equals a crawl in memory's; the
per-host limit holds across all of them; a worker killed with SIGKILL loses
nothing (its leases run out and go to others), nor does the process that
started the crawl; the report can be read at any time."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from helpers.cli import clean_env, run_cli
from helpers.crawl_site import (
    External,
    Pages,
    Site,
    assert_spaced,
    closed_port,
    comparable,
    serve,
    via_closed_proxy,
)
from helpers.redis_server import RedisServer, free_port

pytestmark = pytest.mark.timeout(120)

PAGES = 200


def nettools_cli(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "nettools", *args], text=True,
                            env=clean_env(env), **popen)  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out or "", err or ""


@pytest.fixture(scope="module")
def sites():
    ext = External()
    with serve(ext) as ext_srv:
        site = Site(PAGES, retry_after=0, slow=0.01, huge=100_000, external=ext_srv.url,
                    page_sleep=0.01)  # fmt: skip
        with serve(site) as srv:
            yield site, srv.url


def kill_when_reached(site: Site, proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` once the site has had ``site.reach_at`` requests (those
    after ``hold_from`` hang until then); then let the held ones go."""
    try:
        assert site.reached.wait(30), "the crawl never got going"
        proc.send_signal(signal.SIGKILL)
        finish(proc)
    finally:
        site.release.set()


CRAWL = ("--check-links", "--check-fragments", "--max-body", "64K", "--format", "json")


@pytest.fixture(scope="module")
def in_memory(sites):
    site, base = sites
    proc = run_cli("crawl", base + "/", *CRAWL)
    assert proc.returncode == 2, proc.stderr
    return comparable(json.loads(proc.stdout))


def test_workers_share_the_crawl_and_it_finds_what_one_process_finds(
    sites, in_memory, redis_server
):
    site, base = sites
    site.reset()
    host = base.split("//")[1]
    state = redis_server.state
    # The workers start first and wait for the crawl to be there.
    workers = [nettools_cli("crawl-worker", "--state", state, "--name", f"w{i}",
                            "--concurrency", "3") for i in range(3)]  # fmt: skip
    crawl = nettools_cli("crawl", base + "/", *CRAWL, "--state", state, "--per-host", "6",
                         "--concurrency", "3")  # fmt: skip
    code, out, err = finish(crawl)
    exits = [finish(w) for w in workers]
    assert code == 2, err
    assert comparable(json.loads(out)) == in_memory
    # Four processes that could have 12 requests under way: never more than 6 at once.
    assert 3 < site.max_inflight[host] <= 6
    assert site.fetched_twice(exempt={"/busy"}) == {}  # /busy: a 429, then again
    summary = json.loads(err.splitlines()[-1])
    visits = summary["state"]["workers"]  # links visited, by process
    assert len([n for n in visits.values() if n > 0]) >= 2
    for wcode, _, werr in exits:
        assert wcode == 0, werr
        assert json.loads(werr.splitlines()[-1])["reason"] == "done"


@pytest.mark.parametrize("spacing", ["crawl-delay", "--delay"])
def test_a_delay_spaces_the_requests_of_all_processes_together(redis_server, spacing):
    # Each process spacing only its own requests would let three times as many
    # through: the spacing is kept in Redis, reserved by the lease.
    robots = spacing == "crawl-delay"
    site = Site(12, crawl_delay=0.1 if robots else None, retry_after=0, slow=0.01, huge=1000)
    option = () if robots else ("--delay", "100ms")
    state = redis_server.state
    with serve(site) as srv:
        workers = [nettools_cli("crawl-worker", "--state", state, "--name", f"w{i}",
                                "--concurrency", "3") for i in range(2)]  # fmt: skip
        crawl = nettools_cli("crawl", srv.url + "/", "--state", state, "--concurrency", "3",
                             "--format", "json", *option)  # fmt: skip
        code, out, err = finish(crawl)
        exits = [finish(w) for w in workers]
    assert code == 2, err
    assert all(wcode == 0 for wcode, _, _ in exits), exits
    visits = json.loads(err.splitlines()[-1])["state"]["workers"]
    assert len([n for n in visits.values() if n > 0]) >= 2
    assert_spaced(site, 0.1, unspaced=2)


def test_a_dead_host_costs_one_request_whatever_the_number_of_processes(redis_server):
    # Until a host has answered once it has one slot, across all processes; a
    # refused connection settles it in Redis, and every link to it, queued or
    # found later by any process, fails at once.
    hosts, per_host = 5, 12
    pages = {"/": ([f"/{n}.html" for n in range(per_host)], 0)}
    for n in range(per_host):
        pages[f"/{n}.html"] = ([f"http://dead-{h}.example/{n}.html" for h in range(hosts)], 0.1)
    site = Pages(pages)
    state = redis_server.state
    with serve(site) as srv, closed_port() as closed:
        env = via_closed_proxy(closed.getsockname()[1])
        workers = [nettools_cli("crawl-worker", "--state", state, "--concurrency", "8", env=env)
                   for _ in range(2)]  # fmt: skip
        crawl = nettools_cli("crawl", srv.url + "/", "--state", state, "--check-links",
                             "--concurrency", "2", "--format", "jsonl", env=env)  # fmt: skip
        code, out, err = finish(crawl)
        exits = [finish(w) for w in workers]
    assert code == 2, err
    assert all(wcode == 0 for wcode, _, _ in exits), exits
    dead = [json.loads(line) for line in out.splitlines() if ".example/" in line]
    assert len(dead) == hosts * per_host
    assert all(r["reason"].startswith("connect: ") for r in dead)
    assert sorted(r["attempts"] for r in dead) == [0] * (len(dead) - hosts) + [1] * hosts
    summary = json.loads(err.splitlines()[-1])
    assert len([n for n in summary["state"]["workers"].values() if n > 0]) >= 2
    assert summary["requests"] == sum(site.counts.values()) + hosts


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_a_site_that_cannot_be_reached_is_exit_1_in_one_line_whatever_the_state(
    redis_server, tmp_path, kind
):
    state = redis_server.state if kind == "redis" else f"sqlite:{tmp_path}/crawl.db"
    with closed_port() as closed:
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
        for _ in range(2):  # and again: the state holds a crawl whose site is down
            proc = run_cli("crawl", url, "--state", state)
            assert proc.returncode == 1, proc.stderr
            assert proc.stderr.startswith(f"nettools crawl: cannot reach the site: {url}: "
                                          "connect: ")  # fmt: skip
            assert len(proc.stderr.splitlines()) == 1


def test_a_dead_host_with_one_link_fails_as_refused(redis_server):
    # Settled with nothing else queued for it: no link to fail with it.
    site = Pages({"/": (["http://dead.example/only.html"], 0)})
    with serve(site) as srv, closed_port() as closed:
        proc = run_cli("crawl", srv.url + "/", "--state", redis_server.state, "--check-links",
                       "--format", "jsonl", env=via_closed_proxy(closed.getsockname()[1]))
    assert proc.returncode == 2, proc.stderr
    row = json.loads(next(ln for ln in proc.stdout.splitlines() if "dead.example" in ln))
    assert row["reason"].startswith("connect: "), row
    assert "Traceback" not in proc.stderr


def test_max_pages_holds_across_processes(sites, redis_server):
    site, base = sites
    site.reset()
    state = redis_server.state
    workers = [nettools_cli("crawl-worker", "--state", state, "--concurrency", "4")
               for _ in range(2)]  # fmt: skip
    crawl = nettools_cli("crawl", base + "/", "--max-pages", "40", "--format", "json",
                         "--state", state, "--concurrency", "4")  # fmt: skip
    code, out, err = finish(crawl)
    exits = [finish(w) for w in workers]
    assert code in (0, 2), err
    assert all(wcode == 0 for wcode, _, _ in exits), exits
    summary = json.loads(out)["summary"]
    # As in memory: the pages robots.txt disallows count towards the limit.
    assert summary["pages"] + summary["robots_skipped"] == 40 and summary["over_limit"] > 0
    assert len(site.paths() - {"/robots.txt"}) == summary["pages"]  # none beyond the limit


def test_a_redis_with_a_password(sites, tmp_path):
    site, base = sites
    with RedisServer(tmp_path / "redis", port=free_port(), password="s3cret") as rs:
        good = f"redis://:s3cret@127.0.0.1:{rs.port}/0"
        bad = f"redis://:wrong@127.0.0.1:{rs.port}/0"
        refused = run_cli("crawl", base + "/p/1.html", "--include", "/p/", "--state", bad)
        ok = run_cli("crawl", base + "/p/1.html", "--include", "/p/", "--state", good)
    assert refused.returncode == 1
    assert len(refused.stderr.splitlines()) == 1 and "wrong" not in refused.stderr
    assert ":***@127.0.0.1" in refused.stderr
    assert ok.returncode == 0, ok.stderr


def test_a_depth_limit_gives_the_depths_a_crawl_in_memory_gives(sites, redis_server):
    # Links met first on a long path are lowered when a shorter one turns up (and
    # pages too deep at first admitted): admission's rules, run in Redis.
    site, base = sites
    args = ("--depth", "3", "--concurrency", "16", "--format", "json")
    memory = run_cli("crawl", base + "/", *args)
    shared = run_cli("crawl", base + "/", *args, "--state", redis_server.state)
    assert memory.returncode == shared.returncode == 2, shared.stderr
    mem, red = json.loads(memory.stdout), json.loads(shared.stdout)
    assert comparable(red) == comparable(mem)
    assert red["summary"]["too_deep"] == mem["summary"]["too_deep"] > 0


def test_sitemaps_give_the_pages_a_crawl_in_memory_gives(sites, redis_server):
    site, base = sites
    args = ("--sitemap", "--check-links", "--format", "json")
    memory = run_cli("crawl", base + "/", *args)
    shared = run_cli("crawl", base + "/", *args, "--state", redis_server.state)
    assert memory.returncode == shared.returncode == 2, shared.stderr
    mem, red = json.loads(memory.stdout), json.loads(shared.stdout)
    assert comparable(red) == comparable(mem)
    assert base + "/orphan.html" in {row["url"] for row in red["links"]}  # only in the sitemap


def test_a_worker_killed_with_sigkill_loses_nothing(sites, in_memory, redis_server):
    # The first worker takes links and the site holds its requests: it is
    # killed while holding leases, which run out (--lease 1s) and go to the
    # second worker.  The crawl command itself only starts the crawl here: it
    # is killed too once the links are in Redis; any process may write the report.
    site, base = sites
    site.reset()
    state = redis_server.state
    site.reach_at = site.hold_from = 30
    starter = nettools_cli("crawl", base + "/", *CRAWL, "--state", state, "--lease", "1s",
                           "--concurrency", "4")  # fmt: skip
    kill_when_reached(site, starter)
    second = nettools_cli("crawl-worker", "--state", state, "--name", "second")
    wcode, _, werr = finish(second)
    assert wcode == 0, werr
    report = run_cli("crawl", "--state", state, "--report", "--format", "json")
    assert report.returncode == 2, report.stderr
    doc = json.loads(report.stdout)
    assert doc["summary"]["stopped"] is None  # done
    assert doc["summary"]["state"]["reissued"] >= 1
    assert comparable(doc) == in_memory


def test_a_crawl_worker_killed_mid_crawl_has_its_links_visited_by_the_others(
    sites, in_memory, redis_server
):
    # Every process's requests hang in the site; then the worker is killed
    # while holding its leases.  The crawl command puts them back when they
    # run out (--lease 1s) and visits them itself: the crawl ends whole.
    site, base = sites
    site.reset()
    state = redis_server.state
    victim = nettools_cli("crawl-worker", "--state", state, "--name", "victim",
                          "--concurrency", "4")  # fmt: skip
    site.hold_from = 30
    site.reach_at = 30 + 4 + 2  # the victim's 4 slots and the crawl's 2 all hang
    crawl = nettools_cli("crawl", base + "/", *CRAWL, "--state", state, "--lease", "1s",
                         "--concurrency", "2")  # fmt: skip
    kill_when_reached(site, victim)
    code, out, err = finish(crawl)
    assert code == 2, err
    assert comparable(json.loads(out)) == in_memory
    summary = json.loads(err.splitlines()[-1])
    assert summary["stopped"] is None
    assert summary["state"]["reissued"] >= 4  # the victim's leases, at least
    assert summary["state"]["lost"] == 0


def test_a_worker_that_loses_redis_for_its_idle_timeout_exits_1(sites, tmp_path):
    site, base = sites
    site.reset()
    server = RedisServer(tmp_path / "redis").start()
    site.hold_from = 20
    site.reach_at = 20 + 2 + 2  # the crawl's 2 slots and the worker's 2 all hang
    worker = nettools_cli("crawl-worker", "--state", server.state, "--concurrency", "2",
                          "--idle-timeout", "1s")  # fmt: skip
    crawl = nettools_cli("crawl", base + "/", *CRAWL, "--state", server.state,
                         "--concurrency", "2")  # fmt: skip
    try:
        assert site.reached.wait(30), "the crawl never got going"
        server.stop()  # and it does not come back
        site.release.set()
        wcode, _, werr = finish(worker, timeout=30)
    finally:
        site.release.set()
        crawl.kill()
        finish(crawl)
    assert wcode == 1, werr
    # Warnings while it tries again, then the reason it gave up, and no traceback.
    assert werr.strip().splitlines()[-1].startswith("nettools crawl-worker: the crawl state at ")
    assert "Traceback" not in werr


@pytest.mark.parametrize("again", ["same command", "state only"])
def test_stopped_with_ctrl_c_the_same_command_goes_on(sites, in_memory, redis_server, again):
    # SIGINT: the process gives its leases back and reports what the state
    # holds ("interrupted"); the same command again, or 'crawl --state' with
    # no URL (the crawl the state holds, with its settings), finishes it.
    site, base = sites
    site.reset()
    state = redis_server.state
    site.hold_from, site.reach_at = 60, 64
    crawl = nettools_cli("crawl", base + "/", *CRAWL, "--state", state, "--concurrency", "4")
    try:
        assert site.reached.wait(30), "the crawl never got going"
        crawl.send_signal(signal.SIGINT)
        code, out, err = finish(crawl)
    finally:
        site.release.set()
    assert code in (1, 2), err
    partial = json.loads(out)
    assert partial["summary"]["stopped"] == "interrupted"
    assert 0 < partial["summary"]["pages"] < in_memory["summary"]["pages"]
    meta = redis_server.client().hgetall("nettools:crawl:meta")
    assert not redis_server.client().zcard("nettools:crawl:leases")  # all given back
    assert b"done" not in meta
    args = (base + "/", *CRAWL) if again == "same command" else ("--format", "json")
    proc = run_cli("crawl", *args, "--state", state, "--concurrency", "4")
    assert proc.returncode == 2, proc.stderr
    assert comparable(json.loads(proc.stdout)) == in_memory


def test_max_time_stops_every_process_and_the_same_command_goes_on(sites, in_memory,
                                                                   redis_server):
    # The crawl command's --max-time stops the crawl in Redis: the worker ends
    # what it holds and leases nothing more.  Run again, the crawl goes on.
    site, base = sites
    site.reset()
    state = redis_server.state
    worker = nettools_cli("crawl-worker", "--state", state, "--concurrency", "2")
    site.hold_from = 30
    crawl = nettools_cli("crawl", base + "/", *CRAWL, "--state", state, "--concurrency", "2",
                         "--max-time", "1s")  # fmt: skip
    try:
        code, out, err = finish(crawl)  # its own requests are cut after the grace
    finally:
        site.release.set()
    wcode, _, werr = finish(worker)
    assert code in (0, 2), err
    assert json.loads(out)["summary"]["stopped"] == "max-time"
    assert wcode == 0, werr
    assert json.loads(werr.splitlines()[-1])["reason"] == "stopped"
    assert site.total < PAGES / 2  # nobody went on with the crawl
    again = run_cli("crawl", base + "/", *CRAWL, "--state", state)
    assert again.returncode == 2, again.stderr
    assert comparable(json.loads(again.stdout)) == in_memory
    assert json.loads(again.stdout)["summary"]["stopped"] is None


def answered(site: Site) -> int:
    with site.lock:
        return sum(len(times) for times in site.answered.values())


def test_the_crawl_goes_on_through_a_redis_restart(sites, in_memory, tmp_path):
    # Redis, with its append-only file, is killed mid-crawl; the visits under
    # way end while it is away (their answers are lost, the crawl command keeps
    # trying); then it starts again on the same files, and those visits are
    # done again when their leases run out.
    site, base = sites
    site.reset()
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    first = RedisServer(tmp_path / "redis", args=durable).start()
    site.hold_from, site.reach_at = 40, 44
    crawl = nettools_cli("crawl", base + "/", *CRAWL, "--state", first.state, "--lease", "1s",
                         "--concurrency", "4")  # fmt: skip
    try:
        assert site.reached.wait(30), "the crawl never got going"
        first.stop()  # SIGKILL: what it acknowledged is in the append-only file
        before = answered(site)
        site.release.set()
        for _ in range(3000):  # the 4 held requests are answered, into the void
            if answered(site) >= before + 4:
                break
            time.sleep(0.01)
        with RedisServer(tmp_path / "redis", args=durable) as second:
            code, out, err = finish(crawl)
            meta = second.client().hgetall("nettools:crawl:meta")
    finally:
        site.release.set()
        if crawl.poll() is None:
            crawl.kill()
    assert code == 2, err
    assert comparable(json.loads(out)) == in_memory
    assert json.loads(err.splitlines()[-1])["stopped"] is None
    assert meta[b"pending"] == b"0" and int(meta[b"reissued"]) >= 4


def test_the_report_can_be_read_while_workers_go_on(sites, redis_server):
    site, base = sites
    site.reset()
    state = redis_server.state
    site.reach_at = site.hold_from = 40
    crawl = nettools_cli("crawl", base + "/", *CRAWL, "--state", state, "--concurrency", "4")
    try:
        assert site.reached.wait(30), "the crawl never got going"
        mid = run_cli("crawl", "--state", state, "--report", "--format", "json")
    finally:
        site.release.set()
    code, out, err = finish(crawl)
    assert code == 2, err
    doc = json.loads(mid.stdout)
    assert doc["summary"]["stopped"] == "unfinished"
    assert 0 < doc["summary"]["pages"] < json.loads(out)["summary"]["pages"]
    assert "Traceback" not in mid.stderr


def test_another_crawl_under_the_same_prefix_is_refused_unless_fresh(sites, redis_server):
    site, base = sites
    state = redis_server.state
    first = run_cli("crawl", base + "/p/1.html", "--include", "/p/", "--state", state)
    assert first.returncode == 0, first.stderr
    other = run_cli("crawl", base + "/p/2.html", "--include", "/p/", "--state", state)
    assert other.returncode == 2
    assert other.stderr.count("\n") == 1 and "holds another crawl" in other.stderr
    # Another prefix is another crawl; --fresh starts over.
    beside = run_cli("crawl", base + "/p/2.html", "--include", "/p/", "--state",
                     state + "&prefix=second")  # fmt: skip
    assert beside.returncode == 0, beside.stderr
    # The first crawl again: it is done, so nothing is asked for.
    site.reset()
    again = run_cli("crawl", base + "/p/1.html", "--include", "/p/", "--state", state)
    assert again.returncode == 0, again.stderr
    assert site.total == 0
    fresh = run_cli("crawl", base + "/p/2.html", "--include", "/p/", "--state", state,
                    "--fresh", "--format", "json")  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["summary"]["pages"] == PAGES
    assert site.total > PAGES  # crawled anew


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_report_of_another_crawl_is_refused(sites, redis_server, tmp_path, kind):
    site, base = sites
    state = redis_server.state if kind == "redis" else f"sqlite:{tmp_path}/crawl.db"
    crawl = ("--include", "/p/", "--state", state, "--format", "json")
    first = run_cli("crawl", base + "/p/1.html", *crawl)
    assert first.returncode == 0, first.stderr
    other = run_cli("crawl", base + "/p/2.html", *crawl, "--report")
    assert other.returncode == 2
    assert other.stderr.count("\n") == 1 and "holds another crawl" in other.stderr
    same = run_cli("crawl", base + "/p/1.html", *crawl, "--report")
    held = run_cli("crawl", "--state", state, "--report", "--format", "json")
    assert same.returncode == held.returncode == 0, same.stderr + held.stderr
    assert comparable(json.loads(same.stdout)) == comparable(json.loads(held.stdout)) \
        == comparable(json.loads(first.stdout))  # fmt: skip


def test_redis_out_of_reach_is_exit_1_in_one_line(tmp_path):
    missing = f"unix://{tmp_path}/no-redis.sock?db=0"
    proc = run_cli("crawl", "http://127.0.0.1:9/", "--state", missing)
    assert proc.returncode == 1
    assert proc.stderr.startswith("nettools crawl: the crawl state at unix://")
    assert len(proc.stderr.splitlines()) == 1
    worker = run_cli("crawl-worker", "--state", missing, "--idle-timeout", "300ms")
    assert worker.returncode == 1
    assert len(worker.stderr.splitlines()) == 1 and "crawl state" in worker.stderr


def without_redis(*args: str) -> subprocess.CompletedProcess:
    """``nettools *args`` in a process where ``import redis`` fails."""
    code = ("import runpy, sys; sys.modules['redis'] = None; "
            f"sys.argv = ['nettools', *{list(args)!r}]; "
            "runpy.run_module('nettools', run_name='__main__')")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean_env(), timeout=30)  # fmt: skip


def test_without_the_redis_library_one_line_says_how_to_install_it():
    proc = without_redis("crawl", "http://127.0.0.1:9/", "--state", "redis://127.0.0.1:9/0")
    assert proc.returncode == 1
    assert proc.stderr == ("nettools crawl: --state redis needs the redis client library: "
                           "pip install 'nettools[redis]'\n")


def test_without_the_redis_library_the_other_crawls_run(tmp_path):
    site = Pages({"/": (["/a.html"], 0), "/a.html": ([], 0)})
    with serve(site) as srv:
        for state in ((), ("--state", f"sqlite:{tmp_path}/crawl.db")):
            proc = without_redis("crawl", srv.url + "/", *state, "--format", "json")
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)["summary"]["pages"] == 2


@pytest.mark.parametrize(
    "args",
    [["crawl", "http://h/", "--state", "redis://"],
     ["crawl", "http://h/", "--state", "rediss://h/0"],
     ["crawl", "http://h/", "--state", "sqlite:"],
     ["crawl", "http://h/", "--state", "redis://h/zero"],
     ["crawl", "http://h/", "--state", "redis://h/0?colour=red"],
     ["crawl", "http://h/", "--state", "sqlite:x.db", "--distribute", "tcp://127.0.0.1:0"],
     ["crawl", "http://h/", "--state", "sqlite:x.db", "--fresh", "--report"],
     ["crawl", "http://h/", "--report"], ["crawl", "http://h/", "--fresh"], ["crawl"],
     ["crawl-worker", "--state", "sqlite:x.db"],
     ["crawl-worker", "tcp://127.0.0.1:9", "--state", "redis://h/0"]],
)
def test_bad_state_options_are_usage_errors(args, tmp_path):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_worker_waits_for_a_crawl_then_gives_up(redis_server):
    start = time.monotonic()
    proc = run_cli("crawl-worker", "--state", redis_server.state, "--idle-timeout", "500ms")
    assert proc.returncode == 1
    assert "no crawl in" in proc.stderr and time.monotonic() - start >= 0.5
