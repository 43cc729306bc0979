#!/usr/bin/env bash
# Cluster delivery capacity as nodes are added (issue 4's scaling figure).
#
# For each node count N in $NODE_COUNTS (default "1 2 3"): starts a redis-server and N release
# herald nodes sharing it (all on 127.0.0.1, fresh per N), spreads $CONNECTIONS subscribers of
# one channel evenly over the nodes (one herald-bench process per node; the last one triggers,
# through its own node, once the cluster reports every subscriber), sends $EVENTS events at
# $RATE/s, and records per node: deliveries, the node's CPU time per delivery, and the
# deliveries per second. Then, with N = 2, an interest-routing check: subscribers on node 1
# only, events triggered through node 2: node 2 publishes but receives nothing back, node 1
# delivers.
#
# What it shows on this 2-core machine (every node shares core 0, Redis and the generators
# core 1, so the total cannot grow here): each node's CPU per delivery stays flat as nodes
# are added, and a node pays only for its own subscribers, so N machines deliver N times what
# one does. bench/RESULTS.md states the figures and this limit.
#
# Usage: cargo build --release -p herald -p herald-bench
#        bench/cluster.sh                     # OUT=bench/results/<date>-cluster
set -euo pipefail

cd "$(dirname "$0")/.."
NODE_COUNTS="${NODE_COUNTS:-1 2 3}"
CONNECTIONS="${CONNECTIONS:-3000}"
EVENTS="${EVENTS:-300}"
RATE="${RATE:-10}"
OUT="${OUT:-bench/results/$(date +%F)-cluster}"
for bin in target/release/herald target/release/herald-bench; do
    [ -x "$bin" ] || { echo "cluster: $bin missing; cargo build --release -p herald -p herald-bench" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "cluster: redis-server missing (apt-get install redis-server)" >&2; exit 2; }
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'cleanup; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Both starters set globals instead of printing: a `$(…)` subshell would hide the pid from
# `pids`, and the servers would outlive the script.
start_redis() { # sets redis_port
    redis_port="$(free_port)"
    taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$work" >"$work/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

start_node() { # start_node INDEX REDIS_PORT; sets node_pid and node_port
    local port; port="$(free_port)"
    cat >"$work/node$1.toml" <<EOF
[server]
host = "127.0.0.1"
port = $port

[metrics]
enabled = false

[adapter]
driver = "redis"
url = "redis://127.0.0.1:$2"
prefix = "bench"

[[apps]]
id = "app1"
key = "key1"
secret = "secret1"
subscription_count = true
EOF
    taskset -c 0 target/release/herald --config "$work/node$1.toml" >"$work/node$1.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 100); do
        grep -q "listening on" "$work/node$1.log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$work/node$1.log" >&2; exit 1; }
        sleep 0.1
    done
    node_pid="$pid"
    node_port="$port"
}

bench() { # bench PORT PID JSON [flags...]
    local port="$1" pid="$2" json="$3"; shift 3
    taskset -c 1 target/release/herald-bench fanout --ws-url "ws://127.0.0.1:$port" \
        --http-url "http://127.0.0.1:$port" --app-id app1 --key key1 --secret secret1 \
        --server-pid "$pid" --timeout-seconds 180 --json "$json" "$@"
}

summary="$OUT/summary.tsv"
printf 'nodes\tnode\tsubscribers\treceived\tlost\tdeliveries_per_s\tnode_cpu_us_per_delivery\tp99_ms\n' >"$summary"
for n in $NODE_COUNTS; do
    echo "== $n node(s): $CONNECTIONS subscribers, $EVENTS events at $RATE/s"
    start_redis
    nodes=()
    for i in $(seq 1 "$n"); do
        start_node "$i" "$redis_port"
        nodes+=("$node_pid $node_port")
    done
    per=$((CONNECTIONS / n))
    runners=()
    for i in $(seq 1 "$n"); do
        read -r pid port <<<"${nodes[$((i - 1))]}"
        json="$OUT/nodes$n-node$i.json"
        if [ "$i" -lt "$n" ]; then
            bench "$port" "$pid" "$json" --connections "$per" --events "$EVENTS" --rate "$RATE" --listen-only \
                >"$OUT/nodes$n-node$i.log" 2>&1 &
            runners+=($!)
        else
            bench "$port" "$pid" "$json" --connections "$per" --events "$EVENTS" --rate "$RATE" \
                --expect-subscribers "$((per * n))" >"$OUT/nodes$n-node$i.log" 2>&1 &
            runners+=($!)
        fi
    done
    for r in "${runners[@]}"; do wait "$r" || echo "a generator failed; see $OUT/nodes$n-*.log" >&2; done
    for i in $(seq 1 "$n"); do
        python3 - "$OUT/nodes$n-node$i.json" "$n" "$i" >>"$summary" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d, s, l = r["delivery"], r.get("server") or {}, r["latency_us"]
print("\t".join(str(x) for x in [sys.argv[2], sys.argv[3], r["connect"]["opened"], d["received"], d["lost"],
      round(d.get("per_second", 0)), round(s.get("cpu_us_per_delivery", 0), 2), round(l["p99"] / 1000, 2)]))
PY
    done
    cleanup
done

echo "== interest routing: subscribers on node 1 only, events through node 2"
start_redis
start_node 1 "$redis_port"
pid1="$node_pid" port1="$node_port"
start_node 2 "$redis_port"
pid2="$node_pid" port2="$node_port"
bench "$port1" "$pid1" "$OUT/interest-node1.json" --connections 1000 --events "$EVENTS" --rate "$RATE" --listen-only \
    >"$OUT/interest-node1.log" 2>&1 &
listener=$!
# The trigger process holds one socket of its own on another channel, so node 2 has no interest
# in the benchmark channel; it triggers the benchmark channel through node 2's HTTP API.
before2="$(cpu_ticks "$pid2")"
python3 - "$port2" "$EVENTS" "$RATE" <<'PY'
import hashlib, hmac, json, sys, time, urllib.request
port, events, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
time.sleep(3)  # the listener's 1,000 sockets subscribe first (it waits for the first event)
start = time.time()
for i in range(events):
    due = start + i / rate
    time.sleep(max(0.0, due - time.time()))
    body = json.dumps({"name": "e", "channels": ["bench-0"],
                       "data": json.dumps({"hb_seq": i, "hb_sent_ns": int(due * 1e9)})}).encode()
    md5 = hashlib.md5(body).hexdigest()
    q = f"auth_key=key1&auth_timestamp={int(time.time())}&auth_version=1.0&body_md5={md5}"
    sig = hmac.new(b"secret1", f"POST\n/apps/app1/events\n{q}".encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/apps/app1/events?{q}&auth_signature={sig}",
                                 data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()
PY
wait "$listener" || echo "the interest listener failed; see $OUT/interest-node1.log" >&2
after2="$(cpu_ticks "$pid2")"
hz="$(getconf CLK_TCK)"
python3 - "$OUT/interest-node1.json" "$before2" "$after2" "$hz" "$EVENTS" >"$OUT/interest.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r["delivery"]
node2_ms = (int(sys.argv[3]) - int(sys.argv[2])) * 1000 / int(sys.argv[4])
print(f"node 1 (1,000 subscribers): received {d['received']} of {d['expected']}, "
      f"{r['server']['cpu_us_per_delivery']:.2f} µs CPU per delivery")
print(f"node 2 (no subscribers; took the {sys.argv[5]} HTTP triggers and published them): {node2_ms:.0f} ms CPU in all")
PY
cleanup
column -t -s $'\t' "$summary"
cat "$OUT/interest.txt"
