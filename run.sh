#!/usr/bin/env bash
# Quickstart main job: installs what is missing into .venv, then runs the whole flow
# (search CNN and ANN, leaderboard, export, compare). Extra arguments go to `run_search.py run`.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec "$PY" run_search.py run "$@"
