#!/usr/bin/env bash
# Stops a server started by bench/peers/start.sh: SIGTERM, then waits until the process is
# gone (it is not this shell's child, so it polls /proc/PID); SIGKILL after 45 s (herald
# drains connections for up to 10 s and then waits for its grace period).
#
# Usage: bench/peers/stop.sh PID
set -euo pipefail

[ $# -eq 1 ] && [[ "$1" =~ ^[0-9]+$ ]] || { echo "usage: $0 PID" >&2; exit 2; }
pid="$1"

gone() { [ ! -e "/proc/$pid" ] || grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; }

gone && exit 0
kill -TERM "$pid" 2>/dev/null || exit 0
for _ in $(seq 1 450); do
    gone && exit 0
    sleep 0.1
done
echo "stop: $pid still running after 45 s; sending SIGKILL" >&2
kill -KILL "$pid" 2>/dev/null || true
for _ in $(seq 1 50); do
    gone && exit 0
    sleep 0.1
done
echo "stop: $pid did not exit" >&2
exit 1
