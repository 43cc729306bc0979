#!/usr/bin/env bash
# Smoke run of the load generator against herald: builds both, starts herald on a free
# loopback port with a temporary config, runs `herald-bench smoke` (20 connections, 20 events,
# exits non-zero on any loss) and stops the server. No timing assertions.
#
# Usage: bench/smoke.sh            (debug build)
#        PROFILE=release bench/smoke.sh
set -euo pipefail

cd "$(dirname "$0")/.."
profile="${PROFILE:-debug}"
cargo_flags=()
[ "$profile" = release ] && cargo_flags=(--release)

cargo build "${cargo_flags[@]}" -p herald -p herald-bench

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

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$workdir/herald.toml" <<EOF
[metrics]
host = "127.0.0.1"
port = 0

[server]
host = "127.0.0.1"
port = $port

[[apps]]
id = "app1"
key = "key1"
secret = "secret1"
client_events = true
subscription_count = true
EOF

"target/$profile/herald" --config "$workdir/herald.toml" >"$workdir/herald.log" 2>&1 &
server_pid=$!

# Wait (at most 10 s) until the server accepts connections.
for _ in $(seq 1 100); do
    if grep -q "listening on" "$workdir/herald.log"; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$workdir/herald.log" >&2
        echo "smoke: herald exited before listening" >&2
        exit 1
    fi
    sleep 0.1
done
grep -q "listening on" "$workdir/herald.log" || { cat "$workdir/herald.log" >&2; echo "smoke: herald never listened" >&2; exit 1; }

status=0
"target/$profile/herald-bench" smoke \
    --ws-url "ws://127.0.0.1:$port" --http-url "http://127.0.0.1:$port" \
    --app-id app1 --key key1 --secret secret1 \
    --server-pid "$server_pid" --timeout-seconds 60 || status=$?
if [ "$status" -ne 0 ]; then
    echo "smoke: herald-bench failed (status $status); server log:" >&2
    tail -n 50 "$workdir/herald.log" >&2
fi
exit "$status"
