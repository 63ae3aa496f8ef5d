#!/usr/bin/env bash
# CI recipe: start `nettools echo` and `nettools chat` on port 0 in the background,
# wait for each one's JSON ready line, use them, stop them with SIGTERM and check
# the one-line JSON summary each prints on stderr.
#
# The ready line is read from a FIFO, so the script waits exactly until the server
# is listening (no polling); clients are bash's /dev/tcp.  Needs bash >= 4.1 and
# nettools on PATH, or the command to run in $NETTOOLS.
#
# Run it:  bash recipes/ci-echo-chat.sh
#          NETTOOLS="python -m nettools" bash recipes/ci-echo-chat.sh
set -euo pipefail

read -r -a nettools <<<"${NETTOOLS:-nettools}"
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "ci-echo-chat: $*" >&2
    exit 1
}

# start NAME ARGS...: run `nettools ARGS...` in the background and wait (up to
# 20 s) for its ready line; sets $pid and $port.
start() {
    local name=$1 line fd
    shift
    mkfifo "$work/$name.out"
    "${nettools[@]}" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    pid=$!
    pids+=("$pid")
    exec {fd}<"$work/$name.out"  # kept open: the server's stdout never breaks
    IFS= read -r -t 20 -u "$fd" line || fail "$name: no ready line: $(cat "$work/$name.err")"
    [[ $line == *'"event": "listening"'* ]] || fail "$name: not a ready line: $line"
    port=${line##*:}
    port=${port%%\"*}
    echo "$name listening on 127.0.0.1:$port"
}

# expect FD LINE: read lines from FD (up to 50, 10 s each) until one is LINE.
expect() {
    local got
    for _ in $(seq 50); do
        IFS= read -r -t 10 -u "$1" got || fail "wanted '$2', the connection ended or went quiet"
        [[ $got == "$2" ]] && return 0
    done
    fail "wanted '$2', last got '$got'"
}

# stopped NAME PID WANT...: after a SIGTERM, wait for exit status 0 and check
# the summary line.
stopped() {
    local name=$1 p=$2 summary want
    shift 2
    wait "$p" || fail "$name exited with status $?"
    summary=$(tail -n 1 "$work/$name.err")
    echo "$name summary: $summary"
    for want in '"event": "stopped"' '"errors": 0' "$@"; do
        [[ $summary == *"$want"* ]] || fail "$name summary lacks $want"
    done
}

# --- echo: one line there and back.
start echo echo --listen 127.0.0.1:0
echo_pid=$pid
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'hello echo\n' >&3
expect 3 "hello echo"
exec 3<&- 3>&-

# --- chat: alice and bob meet in the lobby; bob talks and leaves.
start chat chat --listen 127.0.0.1:0 --history 5
chat_pid=$pid
exec 4<>"/dev/tcp/127.0.0.1/$port" 5<>"/dev/tcp/127.0.0.1/$port"
expect 4 "*** Welcome to nettools chat! Choose a nickname:"
printf 'alice\n' >&4
expect 4 "*** You are in lobby, alone"
expect 5 "*** Welcome to nettools chat! Choose a nickname:"
printf 'bob\n' >&5
expect 5 "*** You are in lobby, with alice"
expect 4 "*** bob joined lobby"
printf 'hello from bob\n' >&5
expect 4 "<bob> hello from bob"
printf '/quit\n' >&5
expect 5 "*** Bye!"
expect 4 "*** bob left lobby"

# --- stop both; alice is told before the chat closes her connection.
kill -TERM "$echo_pid"
stopped echo "$echo_pid" '"connections": 1' '"bytes_in": 11' '"bytes_out": 11'
kill -TERM "$chat_pid"
expect 4 "*** Server is shutting down"
stopped chat "$chat_pid" '"connections": 2' '"messages": 1'
echo "ci-echo-chat: ok"
