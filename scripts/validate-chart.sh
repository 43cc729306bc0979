#!/usr/bin/env bash
# Validates the Helm chart helm/herald offline (no cluster, no helm binary, no docker):
#
#   scripts/validate-chart.sh              install the pinned tools (PyPI) if needed, then validate
#   scripts/validate-chart.sh --no-install use the existing venv as is
#
# The tools (helm/requirements-validate.txt) go into a private venv, $HERALD_CHART_VENV or
# ${TMPDIR:-/tmp}/herald-chart-venv, re-created only when the requirements file changes.
# What is checked is listed at the top of helm/validate_chart.py: helm lint, values.schema.json
# (including files that must be REJECTED), helm template with the default and ci/ values,
# kubernetes-validate --strict on several Kubernetes versions, the ServiceMonitor CRD object with
# check-jsonschema, herald.toml with `herald config check` when a herald binary exists
# (HERALD_BIN, target/release/herald or target/debug/herald), and the Grafana dashboard's PromQL
# against the metrics contract.
#
# Last line: `chart: N passed, M failed, K skipped`; the exit status is non-zero when M > 0 or a
# step could not run.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$ROOT/helm/requirements-validate.txt"
VENV="${HERALD_CHART_VENV:-${TMPDIR:-/tmp}/herald-chart-venv}"
STAMP="$VENV/.requirements.sha256"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

INSTALL=1
for arg in "$@"; do
  case "$arg" in
    --no-install) INSTALL=0 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ $INSTALL == 1 && ( ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$want" ) ]]; then
  echo "==> installing the chart validation tools into $VENV"
  if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "python3 venv module missing: apt-get install -y python3-venv" >&2
    echo "chart: 0 passed, 1 failed"
    exit 1
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  if ! "$VENV/bin/pip" install --quiet --no-input -r "$REQ"; then
    echo "pip install -r $REQ failed" >&2
    echo "chart: 0 passed, 1 failed"
    exit 1
  fi
  echo "$want" >"$STAMP"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "no venv at $VENV (run without --no-install)" >&2
  echo "chart: 0 passed, 1 failed"
  exit 1
fi

exec "$VENV/bin/python" "$ROOT/helm/validate_chart.py"
