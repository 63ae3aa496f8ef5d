#!/usr/bin/env bash
# CI recipe: check the links of a static site before publishing it.
#
# Serves SITE_DIR (default: a small demo site written here) on 127.0.0.1, port
# 0, with `nettools static`, crawls it with
#     nettools crawl URL --check-links --check-fragments --format junit -o REPORT
# and fails the job (exit 1) when a link is broken, listing each one.  The JUnit
# report (one test case per link) stays at $REPORT for the CI system to show.
# nettools crawl exits 0 when every link is fine, 2 when some are broken and
# 1 when the check itself could not run.  The server's summary (requests, 404s)
# is printed at the end.
#
# Arguments after SITE_DIR go to nettools crawl as they are, e.g. links not to
# check (--exclude REGEX, repeatable), what to crawl (--include REGEX), limits
# (--max-pages N, --timeout 10s) or politeness (--per-host 2, --delay 100ms).
#
# Needs bash >= 4.1 and nettools on PATH (or the command in $NETTOOLS).
#
# Run it:  bash recipes/ci-linkcheck.sh [SITE_DIR [CRAWL_OPTION...]]
#          REPORT=links.xml NETTOOLS="python -m nettools" bash recipes/ci-linkcheck.sh public/
#          bash recipes/ci-linkcheck.sh public/ --exclude '^https://twitter\.com/' --retries 0
set -euo pipefail

read -r -a nettools <<<"${NETTOOLS:-nettools}"
work=$(mktemp -d)
report=${REPORT:-$work/report.xml}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "ci-linkcheck: $*" >&2
    exit 1
}

# demo_site DIR: a few pages that link to each other, an image and an anchor.
demo_site() {
    mkdir -p "$1/docs"
    cat >"$1/index.html" <<'HTML'
<!doctype html><title>Home</title>
<a href="docs/">Docs</a> <a href="docs/install.html#linux">Install on Linux</a>
<img src="logo.svg" alt="logo">
HTML
    cat >"$1/docs/index.html" <<'HTML'
<!doctype html><title>Docs</title>
<a href="../">Home</a> <a href="install.html">Install</a>
HTML
    cat >"$1/docs/install.html" <<'HTML'
<!doctype html><title>Install</title>
<h2 id="linux">Linux</h2><a href="/docs/">Back to the docs</a>
HTML
    echo '<svg xmlns="http://www.w3.org/2000/svg"/>' >"$1/logo.svg"
}

site=
if [[ $# -gt 0 && $1 != -* ]]; then
    site=$1
    shift
fi
crawl_options=("$@")
if [[ -z $site ]]; then
    site=$work/site
    demo_site "$site"
fi
[[ -d $site ]] || fail "no such directory: $site"

# Serve the site; the server's JSON ready line names its address, read through a FIFO.
mkfifo "$work/server.out"
"${nettools[@]}" static "$site" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server=$!
pids+=($server)
exec {fd}<"$work/server.out"
IFS= read -r -t 20 -u "$fd" line || fail "the web server did not start: $(cat "$work/server.err")"
[[ $line =~ \"address\":\ \"([^\"]+)\" ]] || fail "unexpected server line: $line"
url="http://${BASH_REMATCH[1]}/"
echo "serving $site at $url"

status=0
"${nettools[@]}" crawl "$url" --check-links --check-fragments --format junit -o "$report" \
    "${crawl_options[@]}" 2>"$work/crawl.err" || status=$?
summary=$(grep '^{' "$work/crawl.err" | tail -n 1 || true)
echo "crawl summary: $summary"
kill -TERM "$server"
wait "$server" || true
echo "server summary: $(tail -n 1 "$work/server.err")"
case $status in
0) echo "ci-linkcheck: ok, no broken links" ;;
2)
    echo "ci-linkcheck: broken links (report: $report):" >&2
    grep -B1 '<failure' "$report" | sed -nE 's/.*<testcase .*name="([^"]*)".*/  \1/p' >&2
    exit 1
    ;;
*) fail "nettools crawl could not run (exit $status): $(cat "$work/crawl.err")" ;;
esac
