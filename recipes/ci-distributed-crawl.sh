#!/usr/bin/env bash
# CI recipe: check a site's links with a crawl spread over several worker processes.
#
# Serves SITE_DIR (default: a generated demo site of a few dozen pages) on
# 127.0.0.1, port 0, with Python's http.server, then starts the coordinator
#     nettools crawl URL --distribute tcp://127.0.0.1:0 --min-workers N \
#         --check-fragments --format junit -o REPORT
# waits for its ready line (the first line on its stderr: stdout may carry the
# report) to learn the port it bound, and starts N (default 3) workers
#     nettools crawl-worker ENDPOINT
# The coordinator keeps the frontier, robots.txt and politeness; the workers
# fetch and parse.  When the crawl is over the coordinator tells the workers,
# which exit 0.  The job fails (exit 1) when a link is broken, listing each one,
# or when the coordinator or a worker could not run.  The JUnit report (one test
# case per link) stays at $REPORT for the CI system to show.
#
# On several machines: run the coordinator with --distribute tcp://0.0.0.0:5557
# and `nettools crawl-worker tcp://COORDINATOR_HOST:5557` on each worker machine.
#
# Needs bash >= 4.1, python3, and nettools on PATH (or the command in $NETTOOLS).
#
# Run it:  bash recipes/ci-distributed-crawl.sh [SITE_DIR]
#          WORKERS=4 REPORT=links.xml NETTOOLS="python -m nettools" bash recipes/ci-distributed-crawl.sh
set -euo pipefail

read -r -a nettools <<<"${NETTOOLS:-nettools}"
python=${PYTHON:-python3}
workers=${WORKERS:-3}
work=$(mktemp -d)
report=${REPORT:-$work/report.xml}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "ci-distributed-crawl: $*" >&2
    exit 1
}

# demo_site DIR: a tree of pages linking to their children, an anchor, and a
# private area that robots.txt closes.
demo_site() {
    local i
    mkdir -p "$1/docs" "$1/private"
    printf 'User-agent: *\nDisallow: /private/\n' >"$1/robots.txt"
    echo '<!doctype html><title>Home</title><a href="docs/0.html">Docs</a>
<a href="docs/0.html#intro">Intro</a> <a href="private/notes.html">Notes</a>' >"$1/index.html"
    echo '<!doctype html><title>Private</title><a href="../">Home</a>' >"$1/private/notes.html"
    for i in $(seq 0 39); do
        {
            echo "<!doctype html><title>Page $i</title><h1 id=intro>Page $i</h1>"
            echo "<a href=\"../\">Home</a>"
            ((2 * i + 1 < 40)) && echo "<a href=\"$((2 * i + 1)).html\">next</a>"
            ((2 * i + 2 < 40)) && echo "<a href=\"/docs/$((2 * i + 2)).html#intro\">other</a>"
            true
        } >"$1/docs/$i.html"
    done
}

site=${1:-}
if [[ -z $site ]]; then
    site=$work/site
    demo_site "$site"
fi
[[ -d $site ]] || fail "no such directory: $site"

# Serve the site; the server prints its port on stdout, read through a FIFO.
mkfifo "$work/server.out"
"$python" -u -m http.server 0 --bind 127.0.0.1 --directory "$site" \
    >"$work/server.out" 2>"$work/server.err" &
pids+=($!)
exec {server_fd}<"$work/server.out"
IFS= read -r -t 20 -u "$server_fd" line || fail "the web server did not start: $(cat "$work/server.err")"
[[ $line =~ port\ ([0-9]+) ]] || fail "unexpected server line: $line"
url="http://127.0.0.1:${BASH_REMATCH[1]}/"
echo "serving $site at $url"

# The coordinator: its stderr goes through a FIFO; the first line is the ready
# line, the rest (logs, the JSON summary) is copied to crawl.err.
mkfifo "$work/crawl.fifo"
"${nettools[@]}" crawl "$url" --distribute tcp://127.0.0.1:0 --min-workers "$workers" \
    --check-fragments --format junit -o "$report" 2>"$work/crawl.fifo" &
coordinator=$!
pids+=("$coordinator")
exec {crawl_fd}<"$work/crawl.fifo"
IFS= read -r -t 20 -u "$crawl_fd" line || fail "the coordinator did not start"
cat <&"$crawl_fd" >"$work/crawl.err" &
pids+=($!)
copier=$!
[[ $line == *'"event": "listening"'* ]] || fail "not a ready line: $line"
endpoint=${line##*'"address": "'}
endpoint=${endpoint%%\"*}
echo "coordinator listening on $endpoint"

worker_pids=()
for n in $(seq "$workers"); do
    "${nettools[@]}" crawl-worker "$endpoint" --name "worker$n" --idle-timeout 30s \
        2>"$work/worker$n.err" &
    worker_pids+=($!)
    pids+=($!)
done

status=0
wait "$coordinator" || status=$?
wait "$copier" || true
summary=$(grep '^{' "$work/crawl.err" | tail -n 1 || true)
echo "crawl summary: $summary"
for n in $(seq "$workers"); do
    wait "${worker_pids[n - 1]}" || fail "worker$n exited with status $?: $(cat "$work/worker$n.err")"
done
[[ $summary == *'"joined": '"$workers"* ]] || fail "not every worker joined: $summary"
case $status in
0) echo "ci-distributed-crawl: ok, no broken links ($workers workers)" ;;
2)
    echo "ci-distributed-crawl: broken links (report: $report):" >&2
    grep -B1 '<failure' "$report" | sed -nE 's/.*<testcase .*name="([^"]*)".*/  \1/p' >&2
    exit 1
    ;;
*) fail "nettools crawl could not run (exit $status): $(cat "$work/crawl.err")" ;;
esac
