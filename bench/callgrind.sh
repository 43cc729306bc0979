#!/usr/bin/env bash
# Instructions per delivery, counted by callgrind: repeatable where wall-clock and CPU time on
# this shared 2-core machine are not.
#
# Runs the release herald under `valgrind --tool=callgrind` twice with the same subscribers:
# once with no events (connect, subscribe, idle, close) and once with $EVENTS events to
# $CONNECTIONS subscribers of one channel. The difference in instructions, divided by the
# deliveries, is the server's cost of one delivery (the HTTP trigger and the encode included,
# amortised over the subscribers). Also prints the top functions of the delivery run.
#
# Usage: cargo build --release -p herald -p herald-bench && bench/callgrind.sh
#        (apt-get install valgrind; CONNECTIONS=100 EVENTS=200 by default; ~1 minute)
#        HISTORY='bench-*' bench/callgrind.sh   the same with the channel keeping history
set -euo pipefail

cd "$(dirname "$0")/.."
CONNECTIONS="${CONNECTIONS:-100}"
EVENTS="${EVENTS:-200}"
OUT="${OUT:-$(mktemp -d)}"
command -v valgrind >/dev/null || { echo "callgrind: valgrind missing (apt-get install valgrind)" >&2; exit 2; }
for bin in target/release/herald target/release/herald-bench; do
    [ -x "$bin" ] || { echo "callgrind: $bin missing; cargo build --release -p herald -p herald-bench" >&2; exit 2; }
done
mkdir -p "$OUT"

run() { # run NAME EVENTS -> prints total instructions (Ir)
    local name="$1" events="$2" port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    cat >"$OUT/$name.toml" <<EOF
[server]
host = "127.0.0.1"
port = $port
drain_window_seconds = 0
[metrics]
enabled = false
[[apps]]
id = "app1"
key = "key1"
secret = "secret1"
EOF
    if [ -n "${HISTORY:-}" ]; then
        printf '[[apps.history]]\nchannels = "%s"\nmax_events = 1000\nmax_age_seconds = 300\n' "$HISTORY" >>"$OUT/$name.toml"
    fi
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.out" \
        target/release/herald --config "$OUT/$name.toml" >"$OUT/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do
        grep -q "listening on" "$OUT/$name.log" && break
        sleep 0.1
    done
    target/release/herald-bench fanout --ws-url "ws://127.0.0.1:$port" --http-url "http://127.0.0.1:$port" \
        --connections "$CONNECTIONS" --events "$events" --rate 20 --settle-ms 500 --drain-seconds 5 \
        --timeout-seconds 300 --fail-on-loss >"$OUT/$name.bench" 2>&1
    kill -INT "$pid"
    wait "$pid" || true
    # valgrind's own summary line: "==pid== Collected : N"
    awk '/Collected :/ {print $NF}' "$OUT/$name.log" | tail -1
}

idle="$(run idle 0)"
busy="$(run delivery "$EVENTS")"
deliveries=$((CONNECTIONS * EVENTS))
echo "instructions: no events $idle, $EVENTS events $busy"
python3 -c "print(f'instructions per delivery: {($busy - $idle) / $deliveries:,.0f} ($CONNECTIONS subscribers x $EVENTS events)')"
echo "top functions of the delivery run (self cost):"
callgrind_annotate "$OUT/delivery.out" 2>/dev/null | sed -n '/file:function/,$p' | head -25 || true
