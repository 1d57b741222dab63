#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs requirements.txt into it when missing or stale.
# Sourced by run.sh and test.sh; sets PY to the virtualenv's python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CXR_VENV:-$ROOT/.venv}"
# CXR_EXTRA_REQUIREMENTS: more requirement files (space separated), e.g. requirements-jax.txt in CI.
REQ_FILES=("$ROOT/requirements.txt")
for f in ${CXR_EXTRA_REQUIREMENTS:-}; do REQ_FILES+=("$ROOT/$f"); done
stamp="$(cat "${REQ_FILES[@]}" | sha256sum | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-stamp" 2>/dev/null)" != "$stamp" ]; then
  PYTHON="${PYTHON:-python3}"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: $PYTHON is $("$PYTHON" --version 2>&1); this project needs Python 3.11 or newer. Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 2
  fi
  echo "[setup] installing dependencies into $VENV (first run only; a few minutes)..." >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  for f in "${REQ_FILES[@]}"; do
    "$VENV/bin/python" -m pip install -q -r "$f" >&2
  done
  echo "$stamp" > "$VENV/.requirements-stamp"
fi
PY="$VENV/bin/python"
