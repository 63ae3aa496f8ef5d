"""Unmodified HTTP clients under monkey_patch(): 100 concurrent slow requests overlap.

The server is the stdlib ``ThreadingHTTPServer`` in its own process (real
threads, no nettools); every request takes 200 ms.  One hundred requests one
after another would take 20 s; finishing in a few seconds proves the patched
client really waited concurrently.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from helpers.isolated import run_isolated

pytestmark = pytest.mark.timeout(120)

N = 100
LIMIT = 5.0  # seconds; sequential would be N x 0.2 = 20 s

SERVER = """
import http.server, sys, time

class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.2)
        body = ("ok " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256   # 100 clients connect at once
    daemon_threads = True

srv = Server(("127.0.0.1", 0), Slow)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""

# No proxy may sit between the clients and 127.0.0.1.
NO_PROXY_ENV = {
    "http_proxy": "",
    "https_proxy": "",
    "HTTP_PROXY": "",
    "HTTPS_PROXY": "",
    "all_proxy": "",
    "ALL_PROXY": "",
    "no_proxy": "*",
    "NO_PROXY": "*",
}

CLIENT = """
import nettools
nettools.monkey_patch()
import time
{imports}

URL = "http://127.0.0.1:{port}/"

{fetch}

def check(results, elapsed):
    assert results == [("ok /%d" % i).encode() for i in range({n})], results[:3]
    print("elapsed %.2f" % elapsed)
    assert elapsed < {limit}, elapsed

start = time.monotonic()
{run}
check(results, time.monotonic() - start)
print("OK")
"""

GREENPOOL = """
pool = nettools.GreenPool({n})
results = list(pool.imap(fetch, range({n})))
"""

THREADS = """
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor({n}) as ex:
    results = list(ex.map(fetch, range({n})))
"""

CLIENTS = {
    "urllib.request": (
        "import urllib.request",
        """
def fetch(i):
    with urllib.request.urlopen(URL + str(i), timeout=30) as resp:
        return resp.read()
""",
        GREENPOOL,
    ),
    "http.client": (
        "import http.client",
        """
def fetch(i):
    conn = http.client.HTTPConnection("127.0.0.1", {port}, timeout=30)
    try:
        conn.request("GET", "/" + str(i))
        return conn.getresponse().read()
    finally:
        conn.close()
""",
        THREADS,
    ),
    "urllib3": (
        "import urllib3",
        """
http = urllib3.PoolManager(maxsize={n}, block=False)
def fetch(i):
    return http.request("GET", URL + str(i), timeout=30, retries=False).data
""",
        GREENPOOL,
    ),
    "requests": (
        "import requests",
        """
def fetch(i):
    return requests.get(URL + str(i), timeout=30).content
""",
        THREADS,
    ),
}


@pytest.fixture(scope="module")
def server_port():
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        yield port
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()


@pytest.mark.parametrize("client", list(CLIENTS))
def test_concurrent_requests_overlap(client, server_port):
    if client in ("urllib3", "requests"):
        pytest.importorskip(client)
    imports, fetch, run = CLIENTS[client]
    code = CLIENT.format(
        imports=imports,
        fetch=textwrap.dedent(fetch).format(port=server_port, n=N),
        run=textwrap.dedent(run).format(n=N),
        port=server_port,
        n=N,
        limit=LIMIT,
    )
    out = run_isolated(code, timeout=90, env=NO_PROXY_ENV)
    assert "elapsed" in out
