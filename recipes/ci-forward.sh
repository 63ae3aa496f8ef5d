#!/usr/bin/env bash
# CI recipe: put a forwarder in front of a service, use it, stop it, check its summary.
#
# Starts `nettools echo` as the service and `nettools forward` on port 0 in the
# background, waits for each JSON ready line, sends a line through the forwarder
# with bash's /dev/tcp, then stops the forwarder with SIGTERM and checks the
# one-line JSON summary it prints on stderr.  Needs bash and nettools on PATH.
#
# Run it:  bash recipes/ci-forward.sh
set -euo pipefail

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# wait_ready FILE: wait (up to 20 s) for the JSON ready line in FILE; print its port.
wait_ready() {
    local port
    for _ in $(seq 200); do
        port=$(sed -nE '/"event": "listening"/{s/.*"address": "[^"]*:([0-9]+)".*/\1/p;q}' "$1")
        if [[ -n $port ]]; then
            echo "$port"
            return 0
        fi
        sleep 0.1
    done
    echo "ci-forward: no ready line in $1" >&2
    return 1
}

nettools echo --listen 127.0.0.1:0 >"$work/echo.out" 2>"$work/echo.err" &
pids+=($!)
echo_port=$(wait_ready "$work/echo.out")

nettools forward "0:$echo_port" --json >"$work/fwd.out" 2>"$work/fwd.err" &
fwd=$!
pids+=($fwd)
fwd_port=$(wait_ready "$work/fwd.out")
echo "forwarder on 127.0.0.1:$fwd_port -> 127.0.0.1:$echo_port"

# Use it: one line there and back through the forwarder.
exec 3<>"/dev/tcp/127.0.0.1/$fwd_port"
printf 'hello through the forwarder\n' >&3
read -r -t 10 reply <&3
exec 3<&-
exec 3>&-
if [[ $reply != "hello through the forwarder" ]]; then
    echo "ci-forward: unexpected reply: $reply" >&2
    exit 1
fi

# Stop it and check the summary (the last stderr line).
kill -TERM "$fwd"
wait "$fwd"
summary=$(tail -n 1 "$work/fwd.err")
echo "summary: $summary"
for want in '"event": "stopped"' '"connections": 1' '"bytes_in": 28' '"bytes_out": 28' '"errors": 0'; do
    if [[ $summary != *"$want"* ]]; then
        echo "ci-forward: summary lacks $want" >&2
        exit 1
    fi
done
echo "ci-forward: ok"
