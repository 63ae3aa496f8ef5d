"""The crawl whose state is in Redis (``nettools crawl --state redis://...``): its speed
against the other ways to run the same crawl, and Redis's memory per URL.

``crawl_state``: the site of ``crawl.py`` (5,000 pages, each answered after 20 ms, 100
requests in flight), crawled five ways in one run:

* ``nettools``: the single-process crawl (state in its memory);
* ``nettools-dist``: the ZeroMQ coordinator and two ``crawl-worker`` processes;
* ``nettools-redis``: ``nettools crawl --state`` alone (one process working on the state);
* ``nettools-redis2``: the same with one ``crawl-worker --state`` beside it (two
  processes of 50 requests each, one per core).

redis-server (persistence off, a unix socket) runs on the site's core.  Besides pages/s
each Redis run reports ``redis_ops_per_page`` (the commands Redis ran, those inside the
scripts included, per page: its ``commandstats``) and ``redis_cpu_us_per_page`` (Redis's
own CPU time per page: its single thread's capacity is 1e6 / that, in pages/s, for any
number of workers).

``frontier_memory``: Redis's memory per URL known, for a synthetic frontier of 1,000,000
URLs (1,000 pages, each leading to 1,000 new links: 600 pages of the site and 400 links
to 100 other hosts), admitted through the crawl's own scripts; reports
``bytes_per_url`` (``used_memory`` grown, over URLs known) and how many URLs per second
were admitted.

``python -m bench.cases.crawl_shared memory [--urls N]`` and ``... state [--pages N]`` run
one measurement and print it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from bench.cases import Case, Result
from bench.cases._procs import ensure_program, pin, started
from bench.cases.crawl import (
    CONCURRENCY,
    CRAWLER_CORE,
    REPO_ROOT,
    SERVER_CORE,
    TIMEOUT_S,
    crawl_distributed,
    crawl_nettools,
    crawl_result,
    served_site,
)

WORKERS = 2
PAGES_PER_SOURCE = 1000  # the synthetic frontier: pages, and links from each
SITE_SHARE = 600  # of each page's links, to the site; the rest to other hosts
OTHER_HOSTS = 100


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """redis-server on a unix socket (pinned to the site's core); its socket path."""
    program = ensure_program("redis-server", "redis-server")
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "redis.sock")
        cmd = [program, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly",
               "no", "--dir", tmp]  # fmt: skip
        with started(cmd, SERVER_CORE, stdout=subprocess.DEVNULL):
            import redis

            client = redis.Redis(unix_socket_path=sock)
            for _ in range(1000):
                with contextlib.suppress(redis.ConnectionError, FileNotFoundError):
                    if client.ping():
                        break
                time.sleep(0.01)
            yield sock
            client.close()


def redis_figures(sock: str) -> tuple[int, float]:
    """(commands served so far, Redis CPU seconds so far)."""
    import redis

    client = redis.Redis(unix_socket_path=sock)
    calls = sum(v["calls"] for k, v in client.info("commandstats").items()
                if k != "cmdstat_info")  # fmt: skip
    cpu = client.info("cpu")
    client.close()
    return calls, cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def crawl_redis(n: int, workers: int = 1) -> Result:
    """``nettools crawl --state`` and ``workers - 1`` crawl-workers beside it."""
    if n == 0:
        return None
    nettools = [sys.executable, "-m", "nettools"]
    share = str(CONCURRENCY // workers)
    with served_site(n) as url, redis_server() as sock, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:  # fmt: skip
        state = f"unix://{sock}?db=0"
        ops0, cpu0 = redis_figures(sock)
        with contextlib.ExitStack() as stack:
            for i in range(workers - 1):  # they wait for the crawl to be there
                stack.enter_context(started([*nettools, "crawl-worker", "--state", state,
                                             "--concurrency", share, "--name", f"w{i}"],
                                            (SERVER_CORE + i) % 2, cwd=REPO_ROOT,
                                            stderr=subprocess.DEVNULL))  # fmt: skip
            cmd = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *nettools, "crawl", url,
                   "--state", state, "--concurrency", share, "--per-host", str(CONCURRENCY),
                   "--format", "jsonl", "-o", os.devnull]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  preexec_fn=pin(CRAWLER_CORE), cwd=REPO_ROOT)  # fmt: skip
            if proc.returncode not in (0, 2):
                raise RuntimeError(f"the crawl exited {proc.returncode}: {proc.stderr[-2000:]}")
        ops1, cpu1 = redis_figures(sock)
        peak = int(rss.read().split()[-1]) / 1024
    summary = json.loads([ln for ln in proc.stderr.splitlines() if ln.startswith("{")][-1])
    pages = summary["pages"]
    out = crawl_result(pages, summary["elapsed"], peak)
    out["redis_ops_per_page"] = (ops1 - ops0) / pages
    out["redis_cpu_us_per_page"] = (cpu1 - cpu0) / pages * 1e6
    return out


def crawl_redis2(n: int) -> Result:
    return crawl_redis(n, WORKERS)


def frontier_memory(n: int) -> Result:
    """Admit ``n`` URLs through the crawl's scripts; Redis's memory per URL known."""
    if n == 0:
        return None
    import redis

    from nettools.tools.crawl.state import parse_state
    from nettools.tools.crawl.state.frontier import SharedFrontier

    per_page = max(1, n // PAGES_PER_SOURCE)
    site = "docs.example.org"
    with redis_server() as sock:
        client = redis.Redis(unix_socket_path=sock)
        before = client.info("memory")["used_memory"]
        frontier = SharedFrontier.open(parse_state(f"unix://{sock}?db=0"))
        identity = {"seeds": [f"https://{site}/"], "scope": "host", "include": [],
                    "exclude": [], "depth": None, "max_pages": None, "check_links": True,
                    "check_fragments": False, "robots": True, "sitemap": False,
                    "max_body": 10 * 2**20, "user_agent": None}  # fmt: skip
        frontier.create(identity, {"per_host": PAGES_PER_SOURCE, "delay": 0.0})
        sources = [f"https://{site}/library/source-{i}.html" for i in range(PAGES_PER_SOURCE)]
        frontier.seed([(u, "p", site) for u in sources], last=True)
        outcome = {"status": 200, "error": None, "content_type": "text/html", "size": 20000,
                   "truncated": False, "redirect": None, "final_url": None, "skipped": None,
                   "method": "GET", "attempts": 1, "elapsed": 0.02, "anchors": None}
        start = time.perf_counter()
        done = 0
        jobs: list = []
        while done < PAGES_PER_SOURCE:
            if not jobs:
                jobs, _ = frontier.lease("bench", PAGES_PER_SOURCE, 3600.0)
            job = jobs.pop()
            first = done * per_page
            targets = []
            for i in range(first, first + per_page):
                if i % per_page < per_page * SITE_SHARE // 1000:
                    targets.append((f"https://{site}/library/section-{i // 50}/page-{i}.html",
                                    "p", site, ""))  # fmt: skip
                else:
                    host = f"www.project-{i % OTHER_HOSTS}.example.com"
                    targets.append((f"https://{host}/en/latest/reference/item-{i}.html", "e",
                                    host, ""))  # fmt: skip
            frontier.finish("bench", job, outcome, answered=True, requests=1, worker="bench",
                            targets=targets, via=False)  # fmt: skip
            done += 1
        seconds = time.perf_counter() - start
        known = client.hlen(frontier.key("u"))
        used = client.info("memory")["used_memory"] - before
        client.close()
        frontier.close()
    return {"ops_per_s": known / seconds, "seconds": seconds, "urls": known,
            "bytes_per_url": used / known, "used_mb": used / 2**20}  # fmt: skip


CASES: dict[str, Case] = {
    "crawl_state": Case(n=5000, unit="pages", warmup=0, compare=("peak_rss_mb",),
                        peers={"nettools": crawl_nettools, "nettools-dist": crawl_distributed,
                               "nettools-redis": crawl_redis,
                               "nettools-redis2": crawl_redis2}),
    "frontier_memory": Case(n=1_000_000, unit="URLs", warmup=0,
                            peers={"nettools-redis": frontier_memory}),
}  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.crawl_shared")
    sub = parser.add_subparsers(dest="command", required=True)
    mem = sub.add_parser("memory", help="Redis's memory per URL for a synthetic frontier")
    mem.add_argument("--urls", type=int, default=1_000_000)
    run = sub.add_parser("state", help="one crawl of the site with its state in Redis")
    run.add_argument("--pages", type=int, default=5000)
    run.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "memory":
        print(json.dumps(frontier_memory(args.urls)))
    else:
        print(json.dumps(crawl_redis(args.pages, args.workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
