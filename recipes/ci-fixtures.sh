#!/usr/bin/env bash
# CI recipe: start every network fixture of a job with one command, test against
# them, reload them, stop them.
#
# `nettools run recipes/ci-fixtures.toml` starts a static site, a backend on a
# unix socket with a forwarder in front of it, a ZeroMQ event bus and a TCP
# bridge to its events, all in one process.  The script waits for the one
# "ready" line (read through a FIFO: no polling), takes the addresses from the
# ready file, runs a small test suite against the fixtures (one test puts a
# latency on the forwarder through its Toxiproxy API), adds a service and
# reloads with SIGHUP (the connection it holds to the forwarder lives on), then
# stops everything with SIGTERM and checks that each service printed its
# summary.  Needs bash >= 4.1 and nettools on PATH (or the command in $NETTOOLS),
# and the Python that has nettools (or $PYTHON) for the ZeroMQ publisher.
#
# Run it:  bash recipes/ci-fixtures.sh
#          NETTOOLS="python -m nettools" PYTHON=python bash recipes/ci-fixtures.sh
set -euo pipefail

read -r -a nettools <<<"${NETTOOLS:-nettools}"
python=${PYTHON:-python3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "ci-fixtures: $*" >&2
    exit 1
}

# The job's fixtures: the file, and the site it serves (relative to the file).
cp "$here/ci-fixtures.toml" "$work/fixtures.toml"
mkdir "$work/site"
echo '<!doctype html><title>Built</title><h1>the built site</h1>' >"$work/site/index.html"
cd "$work"

mkfifo run.out
"${nettools[@]}" run fixtures.toml --ready-file ready.json >run.out 2>run.err &
run=$!
pids+=($run)
exec {out}<run.out

# wait_ready: read the run's stdout up to its next "ready" line (20 s at most).
wait_ready() {
    local line
    while IFS= read -r -t 20 -u "$out" line; do
        [[ $line == *'"event": "ready"'* ]] && return 0
    done
    fail "no ready line: $(cat run.err)"
}

# address NAME [FIELD]: a service's address (or another field of its first
# listener) from the ready file.
address() {
    "$python" -c 'import json, sys
ready = json.load(open("ready.json"))
print(ready["services"][sys.argv[1]]["listeners"][0][sys.argv[2]])' "$1" "${2:-address}"
}

wait_ready
site=$(address site)
db=$(address db)
echo "fixtures ready: site $site, db $db, bus $(address bus frontend), events $(address events)"

# --- the test suite -----------------------------------------------------------
# 1. The site serves its page.
exec 3<>"/dev/tcp/${site%:*}/${site##*:}"
printf 'GET / HTTP/1.1\r\nHost: ci\r\nConnection: close\r\n\r\n' >&3
page=$(cat <&3)
exec 3<&-
[[ $page == "HTTP/1.1 200 OK"* && $page == *"the built site"* ]] || fail "site: $page"

# 2. The backend answers through the forwarder; keep that connection open.
exec 4<>"/dev/tcp/${db%:*}/${db##*:}"
printf 'hello backend\n' >&4
read -r -t 10 reply <&4 || fail "db: no reply"
[[ $reply == "hello backend" ]] || fail "db: unexpected reply: $reply"

# 3. A build event published on the bus reaches a plain TCP client as a line.
"$python" - "$(address bus frontend)" "$(address events)" <<'PY' || fail "events did not arrive"
import socket, sys, zmq
frontend, events = sys.argv[1], sys.argv[2]
host, port = events.rsplit(":", 1)
lines = socket.create_connection((host, int(port)), timeout=10)
lines.settimeout(0.05)
pub = zmq.Context.instance().socket(zmq.PUB)
pub.linger = 0
pub.connect(frontend)
got = b""
for _ in range(200):  # subscriptions take a moment to travel: publish until one arrives
    pub.send_multipart([b"build/done", b"ok"])
    try:
        got += lines.recv(4096)
    except TimeoutError:
        continue
    if b"\n" in got:
        break
assert got.split(b"\n")[0] == b"build/done ok", got
PY
# 4. Faults on demand: through the forwarder's Toxiproxy API, 300 ms of latency on the
#    backend's answers; a client with a 2 s deadline still gets its answer, later.
"$python" - "$db" <<'PY' || fail "the latency toxic did not behave"
import json, socket, sys, time, urllib.request
host, port = sys.argv[1].rsplit(":", 1)
ready = json.load(open("ready.json"))
(api,) = [x["address"] for x in ready["services"]["db"]["listeners"] if x.get("api")]
def toxiproxy(method, path, body=None):
    req = urllib.request.Request(f"http://{api}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as res:
        return res.status
assert toxiproxy("POST", "/proxies/backend/toxics",
                 {"type": "latency", "attributes": {"latency": 300}}) == 200
with socket.create_connection((host, int(port)), timeout=2) as s:
    start = time.monotonic()
    s.sendall(b"slow\n")
    assert s.recv(100) == b"slow\n"
    assert time.monotonic() - start >= 0.3
assert toxiproxy("DELETE", "/proxies/backend/toxics/latency_downstream") == 204
PY
echo "ci-fixtures: the test suite passed"

# --- reload: add a service; the others keep running ----------------------------
cat >>fixtures.toml <<'TOML'

[services.docs]
type = "static"
root = "site"
TOML
kill -HUP "$run"
wait_ready
[[ $(address db) == "$db" ]] || fail "db moved on reload"
printf 'still there\n' >&4
read -r -t 10 reply <&4 || fail "db: the connection did not survive the reload"
[[ $reply == "still there" ]] || fail "db: unexpected reply after reload: $reply"
exec 4<&-
grep -q '"event": "reloaded".*"started": \["docs"\]' run.err || fail "no reload event: $(cat run.err)"
echo "ci-fixtures: reloaded, docs at $(address docs)"

# --- stop: one summary per service ----------------------------------------------
kill -TERM "$run"
wait "$run" || fail "nettools run exited with $?"
for name in site backend db bus events docs; do
    grep -q "\"event\": \"stopped\".*\"name\": \"$name\"" run.err || fail "no summary for $name"
done
grep '"event": "stopped".*"name": "db"' run.err
echo "ci-fixtures: ok"
