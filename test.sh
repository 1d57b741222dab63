#!/usr/bin/env bash
# Runs the test suite: installs what is missing into .venv, then pytest.
#   ./test.sh            fast suite (what a developer runs; well under 15 minutes on 2 cores)
#   ./test.sh --slow     also the tests marked `slow` (real data, long runs); what CI runs
# Any other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
marker=(-m "not slow")
args=()
for a in "$@"; do
  if [ "$a" = "--slow" ]; then marker=(); else args+=("$a"); fi
done
exec "$PY" -m pytest "${marker[@]}" "${args[@]}"
