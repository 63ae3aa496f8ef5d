#!/usr/bin/env bash
# CI recipe: prove a client copes with a misbehaving network, no container needed.
#
# Starts a service (`nettools echo`) and, in front of it, `nettools forward`
# with Toxiproxy's HTTP API (port 0 for both, read from --ready-file).  Then a
# small client test suite runs three times, each under a different fault set
# through the API exactly as a Toxiproxy client would set it:
#
#   1. latency: 300 ms on every answer; the client's 2 s deadline still holds,
#      so every request succeeds, slower;
#   2. reset_peer: the connection is aborted (RST) on the first request; the
#      client sees a reset, not a truncated answer, and its one retry (after
#      the fault is lifted) succeeds;
#   3. timeout: the service stops answering (the toxic holds the data); the
#      client gives up after its own 1 s deadline instead of hanging.
#
# The job fails (exit 1) if the client does not cope with any of them.
#
# Needs bash, python3, and nettools on PATH (or the command in $NETTOOLS).
#
# Run it:  bash recipes/ci-chaos.sh
set -euo pipefail

read -r -a nettools <<<"${NETTOOLS:-nettools}"
python=${PYTHON:-python3}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# ready FILE KEY: wait (up to 20 s) for a JSON ready line with KEY in FILE; print its address.
ready() {
    local addr
    for _ in $(seq 200); do
        addr=$(sed -nE "/$2/{s/.*\"address\": \"([^\"]*)\".*/\1/p;q}" "$1" 2>/dev/null || true)
        if [[ -n $addr ]]; then
            echo "$addr"
            return 0
        fi
        sleep 0.1
    done
    echo "ci-chaos: no ready line for $2 in $1" >&2
    return 1
}

"${nettools[@]}" echo --listen 127.0.0.1:0 --ready-file "$work/echo.ready" \
    >/dev/null 2>"$work/echo.err" &
pids+=($!)
service=$(ready "$work/echo.ready" '"service": "echo"')

"${nettools[@]}" forward "app=0:$service" --api 127.0.0.1:0 --ready-file "$work/fwd.ready" \
    >/dev/null 2>"$work/fwd.err" &
fwd=$!
pids+=($fwd)
app=$(ready "$work/fwd.ready" '"name": "app"')
api=$(ready "$work/fwd.ready" '"api": "toxiproxy"')
echo "service $service behind the forwarder at $app; Toxiproxy API at $api"

# The client test suite: stdlib only; TOXIC is the fault set for this run.
suite() {
    APP=$app API=$api TOXIC=$1 "$python" - <<'PY'
import json, os, socket, sys, time, urllib.request

app_host, app_port = os.environ["APP"].rsplit(":", 1)
api = "http://" + os.environ["API"]
case = os.environ["TOXIC"]


def toxiproxy(method, path, body=None):
    req = urllib.request.Request(api + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as res:
        return res.status


def request(line, deadline):
    """One request to the service, bounded by the client's own deadline."""
    with socket.create_connection((app_host, int(app_port)), timeout=deadline) as s:
        s.settimeout(deadline)
        s.sendall(line + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the answer was complete")
            answer += chunk
        return answer


faults = {
    "latency": {"type": "latency", "attributes": {"latency": 300}},
    "reset": {"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}},
    "timeout": {"type": "timeout", "attributes": {"timeout": 0}},
}
toxiproxy("POST", "/proxies/app/toxics", {"name": case, **faults[case]})
try:
    if case == "latency":
        for i in range(3):
            start = time.monotonic()
            assert request(b"ping %d" % i, 2.0) == b"ping %d\n" % i
            took = time.monotonic() - start
            assert took >= 0.3, f"the latency toxic did not apply ({took:.3f}s)"
        print(f"latency: 3 requests answered, slower but within the deadline")
    elif case == "reset":
        try:
            request(b"hello", 2.0)
            sys.exit("reset: the request got through a reset_peer toxic")
        except ConnectionResetError:
            pass  # an abort, reported as one: the client knows the answer is missing
        toxiproxy("DELETE", "/proxies/app/toxics/reset")
        assert request(b"hello", 2.0) == b"hello\n"
        print("reset: the reset was seen as a reset, and the retry succeeded")
    else:
        start = time.monotonic()
        try:
            request(b"anyone?", 1.0)
            sys.exit("timeout: an answer came through a timeout toxic")
        except TimeoutError:
            waited = time.monotonic() - start
        assert waited < 5, f"the client hung {waited:.1f}s"
        print(f"timeout: the client gave up after {waited:.1f}s instead of hanging")
finally:
    toxiproxy("POST", "/reset")
PY
}

for toxic in latency reset timeout; do
    suite "$toxic" || { echo "ci-chaos: the client did not cope with $toxic" >&2; exit 1; }
done

kill -TERM "$fwd"
wait "$fwd" || true
echo "ci-chaos: ok"
