#!/usr/bin/env bash
# One fan-out measurement against a fresh herald: starts target/release/herald pinned to core 0
# on 127.0.0.1:$PORT (default 6001) with app app1/key1/secret1, runs herald-bench fanout pinned
# to core 1 with the given flags, and stops the server. A fresh server per run keeps the RSS
# figures honest (memory freed by an earlier run is not always returned to the OS).
#
# Usage: cargo build --release -p herald -p herald-bench
#        bench/fanout.sh --connections 1000 --events 200 --rate 20 [--json out.json]
#        HISTORY='bench-*' bench/fanout.sh ...   the same with those channels keeping history
#                                                (docs/history.md; max_events 1000)
set -euo pipefail

cd "$(dirname "$0")/.."
port="${PORT:-6001}"
for bin in target/release/herald target/release/herald-bench; do
    [ -x "$bin" ] || { echo "fanout: $bin missing; run cargo build --release -p herald -p herald-bench" >&2; exit 2; }
done

workdir="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

cat >"$workdir/herald.toml" <<EOF
[server]
host = "127.0.0.1"
port = $port

[metrics]
host = "127.0.0.1"
port = 0

[[apps]]
id = "app1"
key = "key1"
secret = "secret1"
client_events = true
subscription_count = true
EOF
if [ -n "${HISTORY:-}" ]; then
    printf '\n[[apps.history]]\nchannels = "%s"\nmax_events = 1000\nmax_age_seconds = 300\n' "$HISTORY" >>"$workdir/herald.toml"
fi

taskset -c 0 target/release/herald --config "$workdir/herald.toml" >"$workdir/herald.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$workdir/herald.log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$workdir/herald.log" >&2; exit 1; }
    sleep 0.1
done
grep -q "listening on" "$workdir/herald.log" || { cat "$workdir/herald.log" >&2; exit 1; }

taskset -c 1 target/release/herald-bench fanout \
    --ws-url "ws://127.0.0.1:$port" --http-url "http://127.0.0.1:$port" \
    --app-id app1 --key key1 --secret secret1 --server-pid "$server_pid" "$@"
