"""Requests per dead outside link: ``nettools crawl --check-links`` on a site whose outside
links all lead nowhere.

    python -m bench.deadlinks --links 300 --hosts 60

Serves a local site (nettools' WSGI server, 127.0.0.1, port 0) whose home page links to
``pages`` pages, which between them link ``links`` times to ``hosts`` outside hosts
(``http://dead-N.example/...``, spread evenly), and crawls it with ``--check-links`` while the
environment routes every outside host to a closed loopback port (``http_proxy`` and
``https_proxy`` = ``http://127.0.0.1:9``, ``no_proxy=127.0.0.1``): each outside link fails as a
refused connection and no name is looked up.  Run it inside ``unshare -rn`` (a network
namespace with only loopback) to be sure nothing leaves the machine::

    unshare -rn sh -c 'ip link set lo up && python -m bench.deadlinks'

Prints one JSON line: the crawl's requests to outside hosts per outside link, its elapsed
seconds and the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from typing import Any

HOST = "127.0.0.1"
CLOSED_PORT = 9  # discard: nothing listens on it here


def site_app(pages: int, links: int, hosts: int) -> Any:
    """Home links to /d/0.html .. /d/{pages-1}.html; the outside links are shared among them."""
    per_page = -(-links // pages)

    def outside(k: int) -> list[str]:
        ids = range(k * per_page, min(links, (k + 1) * per_page))
        return [f"http://dead-{i % hosts}.example/page-{i}.html" for i in ids]

    def app(environ: dict, start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/":
            hrefs = [f"/d/{k}.html" for k in range(pages)]
        elif path.startswith("/d/") and path[3:-5].isdigit() and int(path[3:-5]) < pages:
            hrefs = ["/", *outside(int(path[3:-5]))]
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        body = "".join(f'<a href="{h}">{h}</a>\n' for h in hrefs)
        start_response("200 OK", [("Content-Type", "text/html")])
        return [f"<!doctype html><title>{path}</title>{body}".encode()]

    return app


def measure(pages: int, links: int, hosts: int, extra: list[str]) -> dict[str, Any]:
    import nettools
    from nettools.web import wsgi

    sock = nettools.listen((HOST, 0))
    port = sock.getsockname()[1]
    app = site_app(pages, links, hosts)
    server = threading.Thread(target=lambda: wsgi.server(sock, app, log_output=False),
                              daemon=True)  # fmt: skip
    server.start()
    proxy = f"http://{HOST}:{CLOSED_PORT}"
    env = {**os.environ, "http_proxy": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy,
           "HTTPS_PROXY": proxy, "no_proxy": HOST, "NO_PROXY": HOST}  # fmt: skip
    cmd = [sys.executable, "-m", "nettools", "crawl", f"http://{HOST}:{port}/", "--check-links",
           "--format", "jsonl", "-o", os.devnull, *extra]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"the crawl failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(lines[-1])
    inside = summary["pages"] + 1  # the pages and robots.txt
    outside = summary["requests"] - inside
    return {"links": links, "hosts": hosts, "outside_requests": outside,
            "requests_per_link": round(outside / links, 3), "elapsed": summary["elapsed"],
            "broken": summary["broken"], "exit": proc.returncode}  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deadlinks")
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--links", type=int, default=300)
    parser.add_argument("--hosts", type=int, default=60)
    parser.add_argument("crawl_args", nargs="*", help="more options for nettools crawl")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.pages, args.links, args.hosts, args.crawl_args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
